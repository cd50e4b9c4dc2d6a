package nsqd

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A queue with no files is opened at its first Put: nothing touches the
// data path before, a reader selecting on ReadChan early gets the record,
// and a crash-safe cursor exists from then on.
func TestLazyDiskBackendOpensOnFirstPut(t *testing.T) {
	dir := t.TempDir()
	l := &recLog{}
	opens := 0
	open := func(rc chan []byte) *diskBackend {
		opens++
		return openDiskBackendOn(rc, "q", dir, 1<<20, rtMin, rtMax, 1, 50*time.Millisecond, l.logf)
	}
	if !isNewQueue(dqFiles{dir: dir, name: "q"}) {
		t.Fatal("an empty data path must hold a new queue")
	}
	q := newLazyDiskBackend(open)
	if q.Depth() != 0 || !backendIsEmpty(q) || q.Empty() != nil {
		t.Fatal("an unopened queue is empty")
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 || opens != 0 {
		t.Fatalf("nothing may be opened or written before the first Put: %d opens, %v", opens, files)
	}

	got := make(chan []byte, 1)
	go func() { got <- <-q.ReadChan() }() // selected on before the queue exists
	time.Sleep(10 * time.Millisecond)
	if err := q.Put(record(1)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if bodyOf(t, b) != "m1" {
			t.Fatalf("got %q", bodyOf(t, b))
		}
		ref := claimRecord(q, b, false)
		if ref == nil {
			t.Fatal("a record of an opened lazy queue must be tracked for crash safety")
		}
		ref.release()
	case <-time.After(5 * time.Second):
		t.Fatal("the early reader never got the record")
	}
	if opens != 1 {
		t.Fatalf("opened %d times", opens)
	}
	if _, err := os.Stat(filepath.Join(dir, "q.diskqueue.cursor.dat")); err != nil {
		t.Fatalf("no cursor after the first Put: %v", err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if err := q.Put(record(2)); err == nil {
		t.Fatal("Put after Close must fail")
	}
	if isNewQueue(dqFiles{dir: dir, name: "q"}) {
		t.Fatal("a queue that wrote to disk is not new any more")
	}
}

// Closing or deleting a queue that was never opened creates nothing and
// refuses later Puts.
func TestLazyDiskBackendNeverOpened(t *testing.T) {
	dir := t.TempDir()
	for _, del := range []bool{false, true} {
		q := newLazyDiskBackend(func(rc chan []byte) *diskBackend {
			t.Fatal("must not open")
			return nil
		})
		var err error
		if del {
			err = q.Delete()
		} else {
			err = q.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if q.Put(record(1)) == nil {
			t.Fatal("Put after Close/Delete must fail")
		}
	}
	if files, _ := os.ReadDir(dir); len(files) != 0 {
		t.Fatalf("files: %v", files)
	}
}
