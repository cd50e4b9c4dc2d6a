package nsqd

import (
	"math/rand/v2"
	"testing"
)

// Random pushes (mostly in deadline order, some earlier, as with mixed
// msg_timeouts), removals (FIN/REQ/TOUCH) and expiries against a plain set:
// the queue always yields the earliest deadline and knows what it holds.
func TestDeadlineQueueMatchesModel(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, seed*7))
		q := newDeadlineQueue()
		model := map[*Message]bool{}
		var clock int64
		var all []*Message
		for op := 0; op < 20000; op++ {
			switch r := rng.IntN(100); {
			case r < 45:
				clock += int64(rng.IntN(3))
				m := &Message{pri: clock + 1000}
				if rng.IntN(10) == 0 {
					m.pri = clock + int64(rng.IntN(1000)) // shorter timeout
				}
				q.Push(m)
				model[m] = true
				all = append(all, m)
			case r < 80 && len(all) > 0:
				m := all[rng.IntN(len(all))]
				got := q.Remove(m)
				if got != model[m] {
					t.Fatalf("seed %d op %d: Remove = %v, model has it: %v", seed, op, got, model[m])
				}
				delete(model, m)
				if rng.IntN(4) == 0 && got {
					m.pri = clock + 1000 + int64(rng.IntN(50)) // TOUCH
					q.Push(m)
					model[m] = true
				}
			default:
				limit := clock + 1000
				m, wait := q.PeekAndShift(limit)
				var min *Message
				for x := range model {
					if min == nil || x.pri < min.pri {
						min = x
					}
				}
				switch {
				case min == nil && (m != nil || wait != 0):
					t.Fatalf("seed %d op %d: empty queue gave %v, %d", seed, op, m, wait)
				case min != nil && min.pri > limit && (m != nil || wait != min.pri-limit):
					t.Fatalf("seed %d op %d: nothing due, got %v wait %d want %d", seed, op, m, wait, min.pri-limit)
				case min != nil && min.pri <= limit && (m == nil || m.pri != min.pri || !model[m]):
					t.Fatalf("seed %d op %d: want a message with pri %d, got %v", seed, op, min.pri, m)
				}
				if m != nil {
					delete(model, m)
				}
			}
			if q.Len() != len(model) {
				t.Fatalf("seed %d op %d: Len %d, model %d", seed, op, q.Len(), len(model))
			}
		}
		got := q.All()
		if len(got) != len(model) || q.Len() != 0 {
			t.Fatalf("seed %d: All gave %d, model %d, left %d", seed, len(got), len(model), q.Len())
		}
		for _, m := range got {
			if !model[m] {
				t.Fatalf("seed %d: All gave a message that is not queued", seed)
			}
		}
	}
}

// One message held (never finished) while a million pass through: the
// holes behind it are squeezed out, so memory stays bounded.
func TestDeadlineQueueHoldsNoRunOfHoles(t *testing.T) {
	q := newDeadlineQueue()
	held := &Message{pri: 1}
	q.Push(held)
	for i := 0; i < 1_000_000; i++ {
		m := &Message{pri: int64(2 + i)}
		q.Push(m)
		if !q.Remove(m) {
			t.Fatalf("message %d not found", i)
		}
	}
	if q.Len() != 1 || q.Peek() != held {
		t.Fatalf("Len %d, Peek %v: want the held message alone", q.Len(), q.Peek())
	}
	if c := cap(q.fifo); c > 4096 {
		t.Fatalf("FIFO capacity %d after a million removals behind a held message", c)
	}
	if !q.Remove(held) || q.Len() != 0 || q.Remove(held) {
		t.Fatal("the held message must be removable exactly once")
	}
}
