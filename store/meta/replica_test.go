package meta

import (
	"errors"
	"slices"
	"testing"
)

func TestAddReplica(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, jan)
	r.Node = "node-a"
	mustApply(t, db, &CreateRecording{Recording: r})

	// Not sealed yet: nothing to copy.
	wantErr(t, db, &AddReplica{ID: r.ID, Node: "node-b"}, ErrInvalid)
	mustApply(t, db, &UpdateRecording{ID: r.ID, Status: StatusComplete, SealHash: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"})

	for _, n := range []string{"node-c", "node-b", "node-a", "node-c"} {
		mustApply(t, db, &AddReplica{ID: r.ID, Node: n})
	}
	got, err := db.Recording(r.ID)
	if err != nil {
		t.Fatal(err)
	}
	// The writer is not listed, a node listed twice is listed once, sorted.
	if want := []string{"node-b", "node-c"}; !slices.Equal(got.Replicas, want) {
		t.Fatalf("replicas %q, want %q", got.Replicas, want)
	}

	wantErr(t, db, &AddReplica{ID: r.ID, Node: ""}, ErrInvalid)
	wantErr(t, db, &AddReplica{ID: "0198a000-0000-7000-8000-0000000000ff", Node: "node-b"}, ErrNotFound)
	mustApply(t, db, &DeleteRecording{ID: r.ID, By: "u1", At: jan})
	wantErr(t, db, &AddReplica{ID: r.ID, Node: "node-d"}, ErrDeleted)
	got, _ = db.Recording(r.ID)
	if len(got.Replicas) != 0 {
		t.Fatalf("tombstone keeps replicas %q", got.Replicas)
	}
}

func TestAddReplicaLimit(t *testing.T) {
	db := mustOpen(t)
	r := newRec(t, jan)
	r.Status, r.File.SHA256 = StatusComplete, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	mustApply(t, db, &CreateRecording{Recording: r})
	for i := range maxReplicas {
		mustApply(t, db, &AddReplica{ID: r.ID, Node: string(rune('A'+i%26)) + string(rune('a'+i/26))})
	}
	_, err := apply(db, &AddReplica{ID: r.ID, Node: "one-too-many"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("replica %d: %v, want ErrInvalid", maxReplicas+1, err)
	}
}
