package nsqd

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// msgIndex against a Go map: random adds and removes of IDs made the way
// nsqd makes them and of arbitrary bytes, the live set growing to
// thousands and shrinking to nothing several times (resizes both ways,
// long probe runs wrapping around the end of small tables). Every ID
// ever used is looked up after each phase; a removal that left a hole in
// a probe run, or moved an entry out of its home's reach, loses one.
func TestMsgIndexMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	f := newGUIDFactory(7)
	var x msgIndex
	model := map[MessageID]*Message{}
	var ids []MessageID
	clock := int64(1_800_000_000_000_000_000)
	newID := func() MessageID {
		clock += 1 << 16
		if rng.IntN(4) == 0 {
			var id MessageID
			binary.LittleEndian.PutUint64(id[:8], rng.Uint64())
			binary.LittleEndian.PutUint64(id[8:], rng.Uint64()&0xff) // many share their second half
			return id
		}
		g, err := f.nextAt(clock)
		if err != nil {
			t.Fatal(err)
		}
		return g.Hex()
	}
	check := func(phase int) {
		t.Helper()
		if x.len() != len(model) {
			t.Fatalf("phase %d: len %d, model %d", phase, x.len(), len(model))
		}
		for _, id := range ids {
			if got, want := x.get(id), model[id]; got != want {
				t.Fatalf("phase %d: get(%s) = %p, want %p", phase, id[:], got, want)
			}
		}
		seen := 0
		x.each(func(m *Message) {
			if model[m.ID] != m {
				t.Fatalf("phase %d: each visited %s, not indexed", phase, m.ID[:])
			}
			seen++
		})
		if seen != len(model) {
			t.Fatalf("phase %d: each visited %d, want %d", phase, seen, len(model))
		}
	}
	for phase, target := range []int{5, 40, 3000, 0, 700, 9, 0, 200} {
		for steps := 0; steps < 4*max(target, 50); steps++ {
			grow := len(model) < target || (len(model) == target && rng.IntN(2) == 0)
			if grow && rng.IntN(8) > 0 {
				id := newID()
				if len(ids) > 0 && rng.IntN(10) == 0 {
					id = ids[rng.IntN(len(ids))] // live or removed
				}
				m := &Message{ID: id}
				if added := x.addNew(m); added != (model[id] == nil) {
					t.Fatalf("phase %d: addNew(%s) = %v with the ID indexed: %v", phase, id[:], added, model[id] != nil)
				}
				if model[id] != nil {
					continue
				}
				ids = append(ids, id) // a re-added ID twice: harmless
				model[id] = m
			} else if len(ids) > 0 {
				id := ids[rng.IntN(len(ids))]
				if got, want := x.remove(id), model[id]; got != want {
					t.Fatalf("phase %d: remove(%s) = %p, want %p", phase, id[:], got, want)
				}
				delete(model, id)
			}
		}
		for len(model) > target {
			for id := range model {
				x.remove(id)
				delete(model, id)
				break
			}
		}
		check(phase)
		if target == 0 {
			// after a backlog, a trickle: the table shrinks once it has
			// stayed sparse for a while
			big := len(x.slots)
			for i := 0; i < 2*big; i++ {
				m := &Message{ID: newID()}
				x.addNew(m)
				x.remove(m.ID)
			}
			if x.len() != 0 || len(x.slots) > 4*msgIndexMinSlots {
				t.Errorf("phase %d: %d slots kept for %d messages after a trickle (%d before)", phase, len(x.slots), x.len(), big)
			}
		}
	}
	if len(x.slots) > 4*msgIndexMinSlots*16 {
		t.Errorf("%d slots kept for %d messages", len(x.slots), x.len())
	}
}

// The churn of a drain: one ID in, the oldest out, 2,500 live.
func BenchmarkMsgIndexChurn(b *testing.B) {
	f := newGUIDFactory(1)
	msgs := make([]Message, 1<<16)
	for i := range msgs {
		g, _ := f.nextAt(1_800_000_000_000_000_000 + int64(i)<<16)
		msgs[i].ID = g.Hex()
	}
	var x msgIndex
	const live = 2500
	for i := 0; i < live; i++ {
		x.addNew(&msgs[i])
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := &msgs[(i+live)&(len(msgs)-1)]
		out := &msgs[i&(len(msgs)-1)]
		x.addNew(in)
		if x.get(out.ID) != nil {
			x.remove(out.ID)
		}
	}
}
