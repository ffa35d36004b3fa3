package test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type goPackage struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T, patterns ...string) []goPackage {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps=false", "-json"}, patterns...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []goPackage
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

const module = "github.com/callvault/callvault"

// TestImportGraph keeps the architecture's walls standing: capture and
// store never reach HTTP, raft or the web UI (not even through a
// dependency), and only cmd builds the appliance.
func TestImportGraph(t *testing.T) {
	forbidden := []string{"net/http", "github.com/hashicorp/raft", module + "/webui", module + "/cluster", module + "/appliance"}
	pkgs := listPackages(t, "./...")
	var checked int
	for _, p := range pkgs {
		rel := strings.TrimPrefix(p.ImportPath, module+"/")
		walled := rel == "capture" || strings.HasPrefix(rel, "capture/") || rel == "store" || strings.HasPrefix(rel, "store/")
		if walled {
			checked++
			for _, d := range p.Deps {
				for _, f := range forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s", rel, d)
					}
				}
			}
		}
		if !strings.HasPrefix(rel, "cmd/") && rel != "appliance" && !strings.HasPrefix(rel, "appliance/") {
			for _, imp := range p.Imports {
				if imp == module+"/appliance" {
					t.Errorf("%s imports appliance; only cmd may", rel)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no capture or store package found: the test checks nothing")
	}
}
