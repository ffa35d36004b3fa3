# Summarises `go test -v` output: every package's result line, and every
# skipped or failed test with the lines it logged (a skip's reason comes
# before its "--- SKIP" line in -v output), so CI shows why each test that
# did not run was skipped. The full log stays in the file given to awk.
/^=== (RUN|CONT|PAUSE|NAME)/ { n = 0; next }
/^ +--- PASS/ || /^--- PASS/ { n = 0; next }
/^ *--- (SKIP|FAIL)/ {
	print
	for (i = 1; i <= n; i++) print buf[i]
	n = 0
	next
}
/^(ok|FAIL|panic:|\?) / || /^FAIL$/ { print; n = 0; next }
/^ +/ { if (n < 50) buf[++n] = $0; next }
