package meta

import (
	"errors"
	"fmt"
)

// TypeBatch is Batch's type byte. It lives here, not in command.go's iota
// list, so that it is written out as the number it is on disk: 37 is
// TypeOnce, 38 is this.
const TypeBatch CommandType = 38

// MaxBatch bounds the commands of one Batch: a cluster leader coalesces at
// most this many into one raft log entry, and a longer one is refused as
// a whole (a broken or hostile peer).
const MaxBatch = 1024

// Batch carries many commands in one raft log entry. A cluster node
// gathers the Commands its writers commit at the same moment into one
// Batch, so raft stores, sends and fsyncs one entry instead of many and
// the FSM decodes one (raft already groups entries into one append and
// one transaction; a Batch makes each entry carry more).
//
// Apply applies the inner commands in order, in the transaction the Batch
// itself is applied in, each exactly as ApplyBatch would: a refused inner
// command leaves no trace (commands validate before their first write) and
// reports its own error in Result.Batch[i].Err, the others apply. Only a
// storage failure aborts the whole transaction. Inner commands are opaque
// encoded commands of any type (a Once included) except Batch: a Batch
// directly inside a Batch is refused, so a batch's results are one level
// deep.
type Batch struct {
	Cmds [][]byte `json:"cmds"`
}

func (*Batch) commandType() CommandType { return TypeBatch }

func (c *Batch) apply(t *txn) (Result, error) {
	if len(c.Cmds) == 0 || len(c.Cmds) > MaxBatch {
		return Result{}, fmt.Errorf("%w: batch of %d commands (1 to %d)", ErrInvalid, len(c.Cmds), MaxBatch)
	}
	out := make([]Result, len(c.Cmds))
	for i, b := range c.Cmds {
		if len(b) > 0 && CommandType(b[0]) == TypeBatch {
			out[i] = Result{Err: fmt.Errorf("%w: batch inside a batch (command %d of %d)", ErrInvalid, i, len(c.Cmds))}
			continue
		}
		res, err := t.applyKeepGoing(b)
		if err != nil {
			return Result{}, fmt.Errorf("batch command %d of %d: %w", i, len(c.Cmds), err)
		}
		out[i] = res
	}
	return Result{Batch: out}, nil
}

// applyKeepGoing applies b in t for a caller that goes on past a refused
// command (ApplyBatch, ApplyLog, Batch): the refusal is returned in
// Result.Err. Only a storage failure is returned as the error; the caller
// must then abort the transaction, since the command may be half written.
func (t *txn) applyKeepGoing(b []byte) (Result, error) {
	res, err := t.db.applyOne(t, b)
	if se := (storageError{}); errors.As(err, &se) {
		return Result{}, err
	}
	res.Err = err
	return res, nil
}
