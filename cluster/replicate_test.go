package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/callvault/callvault/store"
	"github.com/callvault/callvault/store/meta"
)

const testMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

// fileNode is a member with a real store: encrypted recording files on
// disk, and the copier running.
type fileNode struct {
	dir, addr string
	st        *store.Store
	node      *Node
	repl      *Replicator
}

func (f *fileNode) start(t *testing.T, id string, replicas int) {
	t.Helper()
	st, err := store.Open(store.Config{DataDir: f.dir, Keys: store.KeySource{Env: testMasterKey}, Node: id, FlushInterval: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	f.st = st
	m := &member{dir: f.dir, addr: f.addr, db: st.Meta()}
	n, err := Open(fastConfig(m))
	if err != nil {
		t.Fatal(err)
	}
	f.node = n
	st.SetCommitter(n)
	f.repl = n.StartReplication(st, ReplicationConfig{Replicas: replicas, Interval: 500 * time.Millisecond})
	st.SetRemoteFiles(f.repl)
}

// stop shuts down in the appliance's order: copier, store, raft.
func (f *fileNode) stop() {
	if f.node == nil {
		return
	}
	f.repl.Stop()
	_ = f.st.Close()
	f.node.Close()
	f.node = nil
}

func newFileCluster(t *testing.T, size, replicas int) []*fileNode {
	t.Helper()
	a := &fileNode{dir: t.TempDir(), addr: freeAddr(t)}
	t.Cleanup(a.stop)
	id, err := Prepare(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	a.start(t, id, replicas)
	waitFor(t, "a leads", func() bool { return a.node.Ready(context.Background()) == nil })
	nodes := []*fileNode{a}
	for len(nodes) < size {
		tok, _, err := a.node.IssueToken()
		if err != nil {
			t.Fatal(err)
		}
		f := &fileNode{dir: t.TempDir(), addr: freeAddr(t)}
		t.Cleanup(f.stop)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		id, err := Join(ctx, JoinConfig{DataDir: f.dir, Advertise: f.addr, Token: tok})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		f.start(t, id, replicas)
		err = f.node.RequestVoter(ctx, a.addr)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, f)
	}
	return nodes
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recordOn(t *testing.T, f *fileNode, data []byte) meta.Recording {
	t.Helper()
	ctx := context.Background()
	r, err := f.st.Create(ctx, meta.Recording{Start: time.Now().UTC().Truncate(time.Millisecond), Direction: meta.DirIncoming,
		Source: meta.SourceMirror, Technology: "test", Tenant: "t1", Group: "g1", File: meta.FileInfo{Format: meta.FormatWAV}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write(data); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Close(ctx, store.Final{})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func fileOf(t *testing.T, f *fileNode, rec meta.Recording) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.dir, "recordings", rec.File.Path))
	if err != nil {
		return nil
	}
	return b
}

func play(t *testing.T, f *fileNode, id string) []byte {
	t.Helper()
	a, err := f.st.OpenAudio(context.Background(), id)
	if err != nil {
		t.Fatalf("play %s on %s: %v", id, f.node.ID(), err)
	}
	defer a.Close()
	b, err := io.ReadAll(io.NewSectionReader(a, 0, a.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFilesReplicate: recordings sealed on one node reach the other two as
// byte-identical encrypted files, the metadata lists both copies, each
// copy plays, and deleting the recording removes every copy.
func TestFilesReplicate(t *testing.T) {
	ns := newFileCluster(t, 3, 3)
	a := ns[0]
	var recs []meta.Recording
	var audio [][]byte
	for i := range 4 {
		d := bytes.Repeat([]byte{byte(i + 1), 2, 3, 5, 8, 13}, 40_000+i*10_000)
		audio = append(audio, d)
		recs = append(recs, recordOn(t, ns[i%2], d)) // written on a and b
	}
	for i, rec := range recs {
		writer := ns[i%2]
		want := fileOf(t, writer, rec)
		for _, f := range ns {
			waitFor(t, "copy of "+rec.ID+" on "+f.node.ID(), func() bool { return bytes.Equal(fileOf(t, f, rec), want) })
		}
		waitFor(t, "metadata lists both copies", func() bool {
			for _, f := range ns {
				got, _ := f.st.Meta().Recording(rec.ID)
				if len(got.Replicas) != 2 {
					return false
				}
			}
			return true
		})
		got, _ := a.st.Meta().Recording(rec.ID)
		var others []string
		for _, f := range ns {
			if f.node.ID() != writer.node.ID() {
				others = append(others, f.node.ID())
			}
		}
		slices.Sort(others)
		if !slices.Equal(got.Replicas, others) {
			t.Fatalf("replicas of %s: %q, want %q", rec.ID, got.Replicas, others)
		}
		for _, f := range ns {
			if !bytes.Equal(play(t, f, rec.ID), audio[i]) {
				t.Fatalf("%s plays other bytes than were recorded", f.node.ID())
			}
		}
	}
	for _, f := range ns {
		waitFor(t, "backlog 0", func() bool { s := f.repl.Stats(); return s.Backlog == 0 && s.UnderReplicated == 0 && s.Replicas == 3 })
	}
	st := ns[2].repl.Stats()
	if st.Copied != 4 || st.Bytes == 0 {
		t.Fatalf("c copied %d files (%d bytes), want 4", st.Copied, st.Bytes)
	}
	status, err := a.node.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range status.Nodes {
		if m.Files == nil || m.Files.Replicas != 3 {
			t.Fatalf("status of %s has no file replication state: %+v", m.ID, m.Files)
		}
	}

	if err := a.st.Delete(context.Background(), recs[1].ID, "admin"); err != nil {
		t.Fatal(err)
	}
	for _, f := range ns {
		waitFor(t, "deleted file removed on "+f.node.ID(), func() bool { return fileOf(t, f, recs[1]) == nil })
	}
}

// TestPlayFromPeer: with one replica nobody copies, and a node asked to
// play a recording it does not hold fetches the file from the writer,
// verified, once; a half transfer (the writer stops mid-way) is never
// served.
func TestPlayFromPeer(t *testing.T) {
	ns := newFileCluster(t, 2, 1)
	a, b := ns[0], ns[1]
	data := bytes.Repeat([]byte("0123456789abcdef"), 200_000) // 3.2 MB
	rec := recordOn(t, a, data)
	waitFor(t, "b has the sealed metadata", func() bool { r, _ := b.st.Meta().Recording(rec.ID); return r.File.SHA256 != "" })
	time.Sleep(1200 * time.Millisecond) // two passes: nothing is copied with one replica
	if fileOf(t, b, rec) != nil {
		t.Fatal("a copy was made although cluster.replicas is 1")
	}
	if !bytes.Equal(play(t, b, rec.ID), data) {
		t.Fatal("b played other bytes")
	}
	// The fetch records the copy (or, if that commit fails, the copier's
	// next pass does).
	waitFor(t, "b listed as holding a copy", func() bool {
		got, _ := b.st.Meta().Recording(rec.ID)
		return slices.Equal(got.Replicas, []string{b.node.ID()})
	})

	// No holder reachable: a clear error, nothing half installed.
	rec2 := recordOn(t, a, data)
	waitFor(t, "b has the sealed metadata", func() bool { r, _ := b.st.Meta().Recording(rec2.ID); return r.File.SHA256 != "" })
	a.repl.Stop() // a stops serving files
	_, err := b.st.OpenAudio(context.Background(), rec2.ID)
	if !errors.Is(err, store.ErrNoFile) || !errors.Is(err, ErrNoHolder) {
		t.Fatalf("play with no holder serving: %v, want ErrNoFile and ErrNoHolder", err)
	}
	if fileOf(t, b, rec2) != nil {
		t.Fatal("a file was installed without a holder")
	}
}

func TestRecordingOfAndDirtySet(t *testing.T) {
	up, _ := meta.Encode(&meta.UpdateRecording{ID: "0198a000-0000-7000-8000-000000000001", Status: meta.StatusComplete})
	cr, _ := meta.Encode(&meta.CreateRecording{Recording: meta.Recording{ID: "0198a000-0000-7000-8000-000000000002"}})
	note, _ := meta.Encode(&meta.AddNote{ID: "0198a000-0000-7000-8000-000000000003"})
	// Wrapped by the outbox's idempotency key: the seal still wakes the copier.
	once, _ := meta.Encode(&meta.Once{Key: "00112233445566778899aabbccddeeff", At: time.Unix(1, 0), Cmd: up})
	twice, _ := meta.Encode(&meta.Once{Key: "00112233445566778899aabbccddeeff", At: time.Unix(1, 0), Cmd: once})
	for cmd, want := range map[string]string{string(up): "0198a000-0000-7000-8000-000000000001",
		string(cr): "0198a000-0000-7000-8000-000000000002", string(note): "", "": "", string(up[:5]): "",
		string(once): "0198a000-0000-7000-8000-000000000001", string(twice): ""} {
		if got := recordingOf([]byte(cmd)); got != want {
			t.Errorf("recordingOf(%.40q) = %q, want %q", cmd, got, want)
		}
	}
	var d dirtySet
	d.add("b")
	d.add("a")
	d.add("b")
	if ids, over := d.take(); !slices.Equal(ids, []string{"a", "b"}) || over {
		t.Fatalf("take: %q %v", ids, over)
	}
	for i := range maxDirty + 1 {
		d.add(string(rune(i)))
	}
	if ids, over := d.take(); len(ids) != 0 || !over {
		t.Fatalf("overflow: %d ids, %v", len(ids), over)
	}
	if ids, over := d.take(); len(ids) != 0 || over {
		t.Fatal("take does not reset")
	}
}

// TestSignallingReplicates: a recording's SIP messages travel with its
// file (so an export on a copy holder carries them when the writer is
// gone), and a message the writer stored after the seal reaches a copy
// holder when it reads them.
func TestSignallingReplicates(t *testing.T) {
	nodes := newFileCluster(t, 2, 2)
	a, b := nodes[0], nodes[1]
	ctx := context.Background()
	r, err := a.st.Create(ctx, meta.Recording{Start: time.Now().UTC().Truncate(time.Millisecond), Direction: meta.DirIncoming,
		Source: meta.SourceMirror, Technology: "test", Tenant: "t1", Group: "g1", File: meta.FileInfo{Format: meta.FormatWAV}})
	if err != nil {
		t.Fatal(err)
	}
	msg := func(i int) store.SignalMessage {
		return store.SignalMessage{At: time.Unix(1_760_000_000+int64(i), 0).UTC(), Transport: "udp",
			Src: netip.MustParseAddrPort("192.0.2.1:5060"), Dst: netip.MustParseAddrPort("192.0.2.2:5060"),
			Raw: []byte(fmt.Sprintf("BYE sip:%d@example.com SIP/2.0\r\nCSeq: %d BYE\r\n\r\n", i, i))}
	}
	if err := a.st.AppendSignalling(r.ID(), msg(1), msg(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Write(make([]byte, 64_000)); err != nil {
		t.Fatal(err)
	}
	rec, err := r.Close(ctx, store.Final{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b copies the file", func() bool { return fileOf(t, b, rec) != nil })
	sipOn := func(f *fileNode) int {
		msgs, err := f.st.Signalling(rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs)
	}
	// The copy was taken with the file: b answers from it alone.
	b.st.SetRemoteFiles(nil)
	waitFor(t, "b holds the SIP messages", func() bool { return sipOn(b) == 2 })
	// The 200 to the BYE, stored after the seal: b asks the writer on read.
	if err := a.st.AppendSignalling(rec.ID, msg(3)); err != nil {
		t.Fatal(err)
	}
	b.st.SetRemoteFiles(b.repl)
	if n := sipOn(b); n != 3 {
		t.Fatalf("b reads %d messages after the writer stored a third", n)
	}
	// The writer gone: b's copy still answers, with all three.
	a.stop()
	if n := sipOn(b); n != 3 {
		t.Fatalf("b reads %d messages with the writer gone, want 3", n)
	}
}
