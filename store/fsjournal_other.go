//go:build !linux

package store

// ext4WithoutJournal is Linux's check (fsjournal_linux.go); ext4 is a
// Linux file system.
func ext4WithoutJournal(string) string { return "" }
