package cluster

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/callvault/callvault/store/meta"
	"github.com/hashicorp/raft"
)

// fsm passes committed entries to the metadata database; nothing else
// (STYLE rule 15: the FSM is a thin wrapper, the logic is meta's Apply).
type fsm struct {
	db  *meta.DB
	log *slog.Logger
	// kick (capacity 1) wakes the file copier after a command that may
	// seal or delete a recording, or a membership change.
	kick  chan struct{}
	dirty *dirtySet
	// done is the last raft index the FSM has finished with, commands and
	// configuration entries alike: raft's own AppliedIndex moves when it
	// hands entries over, before they are applied (waitApplied).
	done atomic.Uint64
}

var _ raft.BatchingFSM = (*fsm)(nil)

// ApplyBatch applies the batch's commands in one transaction. Each
// command's response is its meta.Result (Result.Err for a command the
// database refused: every replica refuses it alike), or an error when the
// transaction itself failed.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	entries := make([]meta.LogEntry, 0, len(logs))
	pos := make([]int, 0, len(logs))
	var (
		touched []string // recordings the file copier should look at
		members bool     // a membership change: it looks at everything
	)
	// After the batch is applied, so the copier reads the new state.
	defer func() { f.note(touched, members) }()
	if len(logs) > 0 {
		last := logs[len(logs)-1].Index
		defer func() {
			// A failed transaction answered every command with its error
			// and applied nothing: not done.
			for _, v := range out {
				if _, failed := v.(error); failed {
					return
				}
			}
			f.done.Store(last)
		}()
	}
	for i, l := range logs {
		members = members || l.Type == raft.LogConfiguration
		if l.Type == raft.LogCommand {
			touched = appendRecordings(touched, l.Data)
			entries = append(entries, meta.LogEntry{Index: l.Index, Cmd: l.Data})
			pos = append(pos, i)
		}
	}
	if len(entries) == 0 {
		return out
	}
	res, err := f.db.ApplyLog(entries)
	if err != nil {
		// A storage failure: this replica cannot follow the log any more
		// without diverging. Say so loudly; the callers get the error.
		f.log.Error("cluster: applying committed entries failed; this node's metadata is behind", "first", entries[0].Index, "err", err)
		for _, i := range pos {
			out[i] = err
		}
		return out
	}
	for j, i := range pos {
		if errors.Is(res[j].Err, meta.ErrUnknownCommand) {
			f.log.Error("cluster: committed entry of a type this version does not know", "index", logs[i].Index, "err", res[j].Err)
		}
		out[i] = res[j]
	}
	return out
}

func (f *fsm) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	s, err := f.db.BeginSnapshot()
	if err != nil {
		return nil, err
	}
	return &fsmSnapshot{s: s}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.db.Restore(rc, f.db.SnapshotDir()); err != nil {
		return err
	}
	if i, err := f.db.AppliedIndex(); err == nil {
		f.done.Store(i)
	}
	return nil
}

type fsmSnapshot struct{ s *meta.Snapshot }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { s.s.Release() }

// note tells the file copier what changed and wakes it.
func (f *fsm) note(touched []string, members bool) {
	if f.dirty == nil || (len(touched) == 0 && !members) {
		return
	}
	if members {
		f.dirty.all()
	}
	for _, id := range touched {
		f.dirty.add(id)
	}
	select {
	case f.kick <- struct{}{}:
	default: // a pass is already due
	}
}

// recordingOf returns the recording a command may seal or delete (the
// file copier has work then), or "".
func recordingOf(cmd []byte) string {
	if len(cmd) == 0 {
		return ""
	}
	switch meta.CommandType(cmd[0]) {
	case meta.TypeCreateRecording, meta.TypeUpdateRecording, meta.TypeDeleteRecording:
	case meta.TypeOnce:
		// Recording Commands travel wrapped (outbox.go); Apply refuses a
		// Once inside a Once, so this recursion is one level deep.
		o, err := meta.DecodeOnce(cmd)
		if err != nil || len(o.Cmd) == 0 || meta.CommandType(o.Cmd[0]) == meta.TypeOnce {
			return ""
		}
		return recordingOf(o.Cmd)
	default:
		return ""
	}
	var c struct {
		ID        string `json:"id"`
		Recording struct {
			ID string `json:"id"`
		} `json:"recording"`
	}
	if json.Unmarshal(cmd[1:], &c) != nil {
		return ""
	}
	if c.ID != "" {
		return c.ID
	}
	return c.Recording.ID
}
