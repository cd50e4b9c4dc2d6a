package nsqd

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Crash recovery of a go-diskqueue before it is opened.
//
// go-diskqueue answers a Put once the record is written to the segment file
// and persists its meta file (depth, read and write positions) only on a
// later turn of its loop. After a SIGKILL the meta file can therefore be
// behind the segment files, and no meta file at all exists if the queue
// never synced. go-diskqueue copes badly with both: a meta write position
// below the file size makes it write to a new file, count the depth wrong
// (later "negative depth at tail") and rename a segment with a partial
// record at its end to *.bad; with no meta file it starts writing at offset
// 0 of segment 0, over the records already there. And its read position is
// persisted as soon as a record is handed over, before the message is
// finished, so messages in flight (or in a topic's hand-off to its
// channels) at the time of the crash are gone.
//
// reconcileDiskQueue runs before diskqueue.New. It reads the meta file, the
// cursor file of diskBackend (backend_disk.go: the oldest record not yet
// finished) and the segment files, restores segments that go-diskqueue
// deleted but diskBackend kept hard links of, checks the records past the
// last synced write position (length in range, complete, v1 format marker),
// cuts a torn record off the end, recounts the depth and rewrites the meta
// file (temp file, fsync, rename, fsync of the directory) so that
// go-diskqueue resumes at the cursor and appends after the last complete
// record. docs/robustness-crash.md has the evidence.

// dqPos is a position in a diskqueue: segment number and byte offset.
type dqPos struct{ file, pos int64 }

func (a dqPos) less(b dqPos) bool { return a.file < b.file || (a.file == b.file && a.pos < b.pos) }

func (a dqPos) String() string { return fmt.Sprintf("%d,%d", a.file, a.pos) }

// dqMeta is the content of <name>.diskqueue.meta.dat.
type dqMeta struct {
	depth       int64
	read, write dqPos
}

// dqFiles names the files of one diskqueue.
type dqFiles struct {
	dir, name string
}

func (f dqFiles) meta() string   { return filepath.Join(f.dir, f.name+".diskqueue.meta.dat") }
func (f dqFiles) cursor() string { return filepath.Join(f.dir, f.name+".diskqueue.cursor.dat") }
func (f dqFiles) segment(n int64) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s.diskqueue.%06d.dat", f.name, n))
}

// hold is a hard link diskBackend keeps to a segment while a record in it is
// not finished; go-diskqueue removes the segment itself once it has read it.
func (f dqFiles) hold(n int64) string {
	return filepath.Join(f.dir, fmt.Sprintf("%s.diskqueue.%06d.hold", f.name, n))
}

func readDQMeta(path string) (dqMeta, error) {
	var m dqMeta
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if _, err := fmt.Sscanf(string(b), "%d\n%d,%d\n%d,%d\n",
		&m.depth, &m.read.file, &m.read.pos, &m.write.file, &m.write.pos); err != nil {
		return m, fmt.Errorf("unreadable meta file %q: %w", b, err)
	}
	if m.read.file < 0 || m.read.pos < 0 || m.write.file < 0 || m.write.pos < 0 || m.write.less(m.read) {
		return m, fmt.Errorf("inconsistent meta file %q", b)
	}
	return m, nil
}

// writeDQMeta replaces the meta file atomically and durably.
func writeDQMeta(f dqFiles, m dqMeta) error {
	data := fmt.Sprintf("%d\n%d,%d\n%d,%d\n", m.depth, m.read.file, m.read.pos, m.write.file, m.write.pos)
	return writeFileDurable(f.meta(), []byte(data))
}

// writeFileDurable writes path via a temporary file, fsync, rename and an
// fsync of the directory.
func writeFileDurable(path string, data []byte) error {
	tmp := fmt.Sprintf("%s.%d.tmp", path, rand.Int64())
	fh, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0600)
	if err != nil {
		return err
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path)) // nsqd.go
}

// recordCheck says whether a record of go-diskqueue is one we could have
// written: its length in range and, for a record with the high bit set in
// its first byte, our v1 format marker with a non-empty body or our batch
// marker with a count its length can hold (message_batch.go).
type recordCheck struct{ min, max int32 }

func (c recordCheck) validLength(n int32) bool { return n >= c.min && n <= c.max }

func (c recordCheck) validHead(n int32, first byte) bool {
	switch {
	case first&0x80 == 0:
		return true // NSQ's own record (D-DISK-02)
	case first == diskFormatV1:
		return n > diskHeaderLengthV1
	case first == diskFormatBatch:
		return n >= batchMinLength
	}
	return false
}

// validBatchCount says whether a batch record of n bytes can hold count
// messages.
func validBatchCount(n int32, count uint32) bool {
	return count >= 1 && uint64(count)*batchMinEntry <= uint64(n)-batchHeaderLength
}

// scanSegment walks the records of a segment from offset from. It returns
// the end of the last complete valid record and how many records it passed;
// stop (if >= 0) ends the walk at that offset.
func scanSegment(path string, from, stop int64, chk recordCheck) (end int64, n int64, err error) {
	end, n, _, err = scanSegmentMsgs(path, from, stop, chk)
	return end, n, err
}

// scanSegmentMsgs is scanSegment that also returns extra: how many more
// messages than records the records passed hold (count-1 of each batch).
// Records are skipped over with a read of their header where they are
// larger than the read buffer.
func scanSegmentMsgs(path string, from, stop int64, chk recordCheck) (end, n, extra int64, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return from, 0, 0, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return from, 0, 0, err
	}
	size := st.Size()
	if stop < 0 || stop > size {
		stop = size
	}
	if _, err := fh.Seek(from, io.SeekStart); err != nil {
		return from, 0, 0, err
	}
	const bufSize = 64 << 10
	r := bufio.NewReaderSize(fh, bufSize)
	end = from
	var hdr [batchHeaderLength + 4]byte
	for end < stop {
		if stop-end < 5 {
			return end, n, extra, nil
		}
		if _, err := io.ReadFull(r, hdr[:5]); err != nil {
			return end, n, extra, nil
		}
		l := int32(binary.BigEndian.Uint32(hdr[:4]))
		if !chk.validLength(l) || !chk.validHead(l, hdr[4]) || end+4+int64(l) > stop {
			return end, n, extra, nil
		}
		rest := int(l) - 1
		if hdr[4] == diskFormatBatch {
			if _, err := io.ReadFull(r, hdr[5:]); err != nil {
				return end, n, extra, nil
			}
			count := binary.BigEndian.Uint32(hdr[5:])
			if !validBatchCount(l, count) {
				return end, n, extra, nil
			}
			extra += int64(count) - 1
			rest -= 4
		}
		if rest > bufSize {
			// seek over it (the end is within stop <= size)
			if _, err := fh.Seek(end+4+int64(l), io.SeekStart); err != nil {
				return end, n, extra, nil
			}
			r.Reset(fh)
		} else if _, err := r.Discard(rest); err != nil {
			return end, n, extra, nil
		}
		end += 4 + int64(l)
		n++
	}
	return end, n, extra, nil
}

// countRecords counts the records from a to b (a <= b). Segments are read
// whole except for the two ends. A missing segment counts nothing
// (go-diskqueue skips it too), unless strict: then it is an error.
func countRecords(f dqFiles, a, b dqPos, chk recordCheck, strict bool) (int64, error) {
	n, _, err := countMessages(f, a, b, chk, strict)
	return n, err
}

// countMessages is countRecords that also returns how many more messages
// than records there are (scanSegmentMsgs).
func countMessages(f dqFiles, a, b dqPos, chk recordCheck, strict bool) (int64, int64, error) {
	var total, extra int64
	for file := a.file; file <= b.file; file++ {
		from, stop := int64(0), int64(-1)
		if file == a.file {
			from = a.pos
		}
		if file == b.file {
			stop = b.pos
		}
		if file == b.file && stop == from {
			break
		}
		path := f.segment(file)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && !strict {
			continue
		} else if err != nil {
			return 0, 0, err
		}
		_, n, e, err := scanSegmentMsgs(path, from, stop, chk)
		if err != nil {
			return 0, 0, err
		}
		total += n
		extra += e
	}
	return total, extra, nil
}

// removeCompleteBad removes <segment>.bad for segments from..to (before the
// read position) whose every byte belongs to a complete valid record.
// go-diskqueue renames a segment on a read error; in such a file that is
// EOF at its end, which go-diskqueue v1.1.0 gets when its reader has read
// the last record of the write segment before the writer moved on: every
// record had been read. (removeSpuriousBad in backend_disk.go does the same
// while running, and the holds cover a crash right after the rename; this
// is for data paths where neither applied.)
func removeCompleteBad(f dqFiles, from, to int64, chk recordCheck, rep *recoveryReport) {
	for n := max(from, 0); n <= to; n++ {
		bad := f.segment(n) + ".bad"
		st, err := os.Stat(bad)
		if err != nil {
			continue
		}
		if end, _, err := scanSegment(bad, 0, -1, chk); err == nil && end == st.Size() {
			if os.Remove(bad) == nil {
				rep.notef("removed %s: all of it had been read", filepath.Base(bad))
			}
		}
	}
}

// dqDir is what the data path holds for one queue.
type dqDir struct {
	segments map[int64]int64 // number -> size
	holds    map[int64]bool
}

// probeDQ finds the segments and holds around [lo, hi] with a stat per
// file instead of reading the whole data path: the range, then on both
// sides as long as there is a segment or a hold.
func probeDQ(f dqFiles, lo, hi int64) dqDir {
	d := dqDir{segments: map[int64]int64{}, holds: map[int64]bool{}}
	probe := func(n int64) bool {
		found := false
		if st, err := os.Stat(f.segment(n)); err == nil {
			d.segments[n] = st.Size()
			found = true
		}
		if _, err := os.Stat(f.hold(n)); err == nil {
			d.holds[n] = true
			found = true
		}
		return found
	}
	for n := lo; n <= hi; n++ {
		probe(n)
	}
	for n := hi + 1; probe(n); n++ {
	}
	for n := lo - 1; n >= 0 && probe(n); n-- {
	}
	return d
}

// listDQ reads the data path for the files of queue f.
func listDQ(f dqFiles) (dqDir, error) {
	d := dqDir{segments: map[int64]int64{}, holds: map[int64]bool{}}
	entries, err := os.ReadDir(f.dir)
	if err != nil {
		return d, err
	}
	prefix := f.name + ".diskqueue."
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		num, kind, ok := strings.Cut(rest, ".")
		if !ok || len(num) < 6 || (kind != "dat" && kind != "hold") {
			continue
		}
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n < 0 {
			continue
		}
		if kind == "hold" {
			d.holds[n] = true
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		d.segments[n] = info.Size()
	}
	return d, nil
}

// recoveryReport says what reconcileDiskQueue changed; empty when nothing.
type recoveryReport struct {
	changed bool
	notes   []string
}

func (r *recoveryReport) notef(format string, args ...interface{}) {
	r.changed = true
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// isNewQueue reports that no file of the queue exists. go-diskqueue rolls
// past segment 0 only after a sync, which writes the meta file, and holds
// exist only with a cursor: with none of these four, no other file of this
// queue can exist.
func isNewQueue(f dqFiles) bool {
	return !fileExists(f.meta()) && !fileExists(f.cursor()) && !fileExists(f.segment(0)) && !fileExists(f.hold(0))
}

// reconcileDiskQueue makes the meta file of queue f agree with its segments
// and cursor (see above). It returns the reconciled state.
//
// It also counts the messages (msgCount): go-diskqueue's depth counts
// records, and a batch record holds several messages. The cursor file
// (version 2) has the count from the cursor to the write end it was
// written with; the records between those positions and the reconciled
// ones are counted from their headers. Without a cursor file there are no
// batch records to count before the last synced write position: they are
// only written while the cursor file exists, and a shutdown with batch
// records queued keeps it (backend_disk.go). Anything else (an old or
// unreadable cursor file, positions that cannot be related) counts the
// whole queue.
func reconcileDiskQueue(f dqFiles, chk recordCheck) (dqMeta, msgCount, recoveryReport, error) {
	var rep recoveryReport
	var err error
	meta, metaErr := readDQMeta(f.meta())
	metaOK := metaErr == nil
	cst, counted, curOK := readCursorState(f.cursor())
	cur := cst.pos

	if metaOK && !curOK {
		// the common case: a clean shutdown, or a data path NSQ wrote;
		// only the tail of the write segment can be off
		if m, tailExtra, done, err := reconcileTail(f, meta, chk, &rep); err != nil {
			return m, msgCount{}, rep, err
		} else if done {
			mc := msgCount{extra: tailExtra}
			if fileExists(f.cursor()) {
				// a cursor file without a valid slot: count everything
				if _, e, err := countMessages(f, m.read, m.write, chk, false); err == nil {
					mc.extra = e
				}
			}
			return m, mc, rep, nil
		}
	}
	if !metaOK && !curOK && !fileExists(f.segment(0)) && !fileExists(f.hold(0)) {
		// A new queue (see isNewQueue). Two stats instead of a listing of
		// the data path keep creating n channels O(n), not O(n²).
		return dqMeta{}, msgCount{}, rep, nil
	}
	if !metaOK && !errors.Is(metaErr, os.ErrNotExist) {
		rep.notef("ignored %s", metaErr)
	}

	var d dqDir
	if metaOK || curOK {
		lo, hi := meta.read.file, meta.write.file
		if !metaOK {
			lo, hi = cur.file, cur.file
		} else if curOK {
			lo, hi = min(lo, cur.file), max(hi, cur.file)
		}
		d = probeDQ(f, lo, hi)
	} else if d, err = listDQ(f); err != nil {
		return meta, msgCount{}, rep, err
	}
	sizeOf := func(n int64) int64 {
		if s, ok := d.segments[n]; ok {
			return s
		}
		if st, err := os.Stat(f.hold(n)); err == nil {
			return st.Size()
		}
		return -1
	}
	lowest := int64(-1)
	for n := range d.segments {
		if lowest < 0 || n < lowest {
			lowest = n
		}
	}
	for n := range d.holds {
		if lowest < 0 || n < lowest {
			lowest = n
		}
	}

	// where reading resumes: the cursor (oldest unfinished record), else the
	// meta read position, else the first segment
	usable := func(p dqPos) bool {
		if s := sizeOf(p.file); s >= 0 {
			return p.pos <= s
		}
		return p.pos == 0 && (!metaOK || !meta.write.less(p)) // not created yet
	}
	var start dqPos
	switch {
	case curOK && usable(cur):
		start = cur
		if metaOK && start != meta.read {
			rep.notef("read position %s -> %s (oldest unfinished record)", meta.read, start)
		}
	case metaOK && usable(meta.read):
		start = meta.read
		if curOK {
			rep.notef("cursor %s unusable, kept meta read position %s", cur, meta.read)
		}
	case lowest >= 0:
		start = dqPos{lowest, 0}
		rep.notef("no usable read position, starting at segment %d", lowest)
	case metaOK:
		start = meta.write
	}

	// restore segments go-diskqueue deleted while their records were not
	// finished; a .bad go-diskqueue made of a held segment goes, the hold
	// has the same data (go-diskqueue renames a segment it read to its end
	// when the writer rolls, see removeSpuriousBad)
	for n := range d.holds {
		hold, seg := f.hold(n), f.segment(n)
		hs, err := os.Stat(hold)
		if err != nil {
			delete(d.holds, n)
			continue
		}
		if bs, err := os.Stat(seg + ".bad"); err == nil && os.SameFile(hs, bs) {
			if os.Remove(seg+".bad") == nil {
				rep.notef("removed %s.bad (kept as a hold)", filepath.Base(seg))
			}
		}
		if n < start.file {
			os.Remove(hold)
			delete(d.holds, n)
			continue
		}
		if _, ok := d.segments[n]; !ok {
			if err := os.Rename(hold, seg); err != nil {
				return meta, msgCount{}, rep, err
			}
			d.segments[n] = hs.Size()
			rep.notef("restored segment %d (%d bytes)", n, hs.Size())
		} else {
			os.Remove(hold)
		}
		delete(d.holds, n)
	}

	// where writing resumes: after the last complete record of the last
	// segment
	last := int64(-1)
	for n := range d.segments {
		if n > last {
			last = n
		}
	}
	var end dqPos
	switch {
	case last < 0 || (metaOK && meta.write.file > last):
		end = dqPos{max(start.file, last+1), 0}
		if metaOK {
			end.file = max(end.file, meta.write.file)
		}
	default:
		from := int64(0)
		switch {
		case metaOK && meta.write.file == last && meta.write.pos <= d.segments[last]:
			from = meta.write.pos
		case start.file == last:
			from = start.pos
		}
		valid, _, err := scanSegment(f.segment(last), from, -1, chk)
		if err != nil {
			return meta, msgCount{}, rep, err
		}
		if size := d.segments[last]; valid < size {
			if err := os.Truncate(f.segment(last), valid); err != nil {
				return meta, msgCount{}, rep, err
			}
			rep.notef("cut %d bytes of a partial or invalid record off segment %d at %d", size-valid, last, valid)
			d.segments[last] = valid
		}
		end = dqPos{last, valid}
	}
	if end.less(start) {
		rep.notef("read position %s beyond the end %s", start, end)
		start = end
	}
	if _, ok := d.segments[end.file]; !ok && end.pos == 0 {
		// go-diskqueue reads a missing write segment as an error
		if fh, err := os.OpenFile(f.segment(end.file), os.O_RDWR|os.O_CREATE, 0600); err == nil {
			fh.Close()
			d.segments[end.file] = 0
		}
	}
	// a read position at the very end of a finished segment makes
	// go-diskqueue read EOF there and rename the segment .bad: start at the
	// next segment instead
	for start.file < end.file {
		size, ok := d.segments[start.file]
		if ok && start.pos < size {
			break
		}
		nextFile := end.file
		for n := range d.segments {
			if n > start.file && n < nextFile {
				nextFile = n
			}
		}
		start = dqPos{nextFile, 0}
	}
	removeCompleteBad(f, start.file-2, start.file-1, chk, &rep)

	// depth: from the meta depth when its positions can be related to the
	// new ones, else a count of every record from start to end
	depth, err := func() (int64, error) {
		if !metaOK {
			return -1, nil
		}
		d := meta.depth
		switch {
		case start.less(meta.read):
			n, err := countRecords(f, start, meta.read, chk, true)
			if err != nil {
				return -1, nil
			}
			d += n
		case meta.read.less(start):
			// the segments of meta.read may be gone (read and
			// deleted after the last sync): then count afresh
			n, err := countRecords(f, meta.read, start, chk, true)
			if err != nil {
				return -1, nil
			}
			d -= n
		}
		switch {
		case meta.write.less(end):
			if meta.write.less(start) {
				return -1, nil
			}
			n, err := countRecords(f, meta.write, end, chk, true)
			if err != nil {
				return -1, nil
			}
			d += n
		case end.less(meta.write):
			return -1, nil
		}
		if d < 0 || (d == 0 && start != end) {
			return -1, nil
		}
		return d, nil
	}()
	if err != nil {
		return meta, msgCount{}, rep, err
	}
	extra := int64(-1)
	if counted {
		extra = cst.extraAt(f, start, end, chk)
	}
	switch {
	case depth < 0:
		depth, extra, err = countMessages(f, start, end, chk, false)
	case extra < 0:
		_, extra, err = countMessages(f, start, end, chk, false)
	}
	if err != nil {
		return meta, msgCount{}, rep, err
	}
	mc := msgCount{extra: extra}
	if counted && cst.skip > 0 && cst.pos == start {
		mc.skipN = cst.skip
	}
	// segments before start are finished
	for n := range d.segments {
		if n < start.file {
			if os.Remove(f.segment(n)) == nil {
				rep.notef("removed finished segment %d", n)
			}
			delete(d.segments, n)
		}
	}
	out := dqMeta{depth: depth, read: start, write: end}
	if !metaOK || out != meta {
		if metaOK {
			rep.notef("meta depth=%d read=%s write=%s -> depth=%d read=%s write=%s",
				meta.depth, meta.read, meta.write, out.depth, out.read, out.write)
		} else {
			rep.notef("no meta file -> depth=%d read=%s write=%s", out.depth, out.read, out.write)
		}
		if err := writeDQMeta(f, out); err != nil {
			return meta, msgCount{}, rep, err
		}
	}
	return out, mc, rep, nil
}

// msgCount is what reconcileDiskQueue says about messages: how many more
// there are than records from the read position to the write end, and how
// many messages of the first record need not come again (skip, written by
// a clean shutdown that had delivered them).
type msgCount struct {
	extra, skipN int64
}

// extraAt derives the extra messages of [start, end) from the state's,
// counting the records in between (-1 when they cannot be related).
func (st cursorState) extraAt(f dqFiles, start, end dqPos, chk recordCheck) int64 {
	if end.less(st.to) {
		return -1 // records the state counted are gone (a cut tail)
	}
	if st.to.less(start) {
		_, e, err := countMessages(f, start, end, chk, true)
		if err != nil {
			return -1
		}
		return e
	}
	e := st.extra
	switch {
	case start.less(st.pos):
		_, x, err := countMessages(f, start, st.pos, chk, true)
		if err != nil {
			return -1
		}
		e += x
	case st.pos.less(start):
		_, x, err := countMessages(f, st.pos, start, chk, true)
		if err != nil {
			return -1
		}
		e -= x
	}
	if st.to.less(end) {
		_, x, err := countMessages(f, st.to, end, chk, true)
		if err != nil {
			return -1
		}
		e += x
	}
	if e < 0 {
		return -1
	}
	return e
}

// reconcileTail handles a meta file without a cursor: if the write segment
// is exactly as long as the meta says, nothing is to be done (done=true).
// If it is longer (records written after the last sync), the extra records
// are checked and counted and the meta is rewritten. Anything else is left
// to the full reconciliation (done=false).
func reconcileTail(f dqFiles, meta dqMeta, chk recordCheck, rep *recoveryReport) (dqMeta, int64, bool, error) {
	removeCompleteBad(f, meta.read.file-2, meta.read.file-1, chk, rep)
	if meta.read.file < meta.write.file {
		// reading at the very end of a finished segment (or in a missing
		// one) is go-diskqueue's EOF-as-corruption case: full
		// reconciliation moves the read position on
		if st, err := os.Stat(f.segment(meta.read.file)); err != nil || st.Size() <= meta.read.pos {
			return meta, 0, false, nil
		}
	}
	st, err := os.Stat(f.segment(meta.write.file))
	if errors.Is(err, os.ErrNotExist) {
		if meta.write.pos != 0 {
			return meta, 0, false, nil
		}
		if _, err := os.Stat(f.segment(meta.write.file + 1)); err == nil {
			return meta, 0, false, nil
		}
		return meta, 0, true, nil // go-diskqueue creates it at the first write
	}
	if err != nil {
		return meta, 0, false, err
	}
	if _, err := os.Stat(f.segment(meta.write.file + 1)); err == nil {
		return meta, 0, false, nil // segments beyond the meta: full reconciliation
	}
	size := st.Size()
	switch {
	case size == meta.write.pos:
		return meta, 0, true, nil
	case size < meta.write.pos:
		return meta, 0, false, nil
	}
	valid, n, extra, err := scanSegmentMsgs(f.segment(meta.write.file), meta.write.pos, -1, chk)
	if err != nil {
		return meta, 0, false, err
	}
	if valid < size {
		if err := os.Truncate(f.segment(meta.write.file), valid); err != nil {
			return meta, 0, false, err
		}
		rep.notef("cut %d bytes of a partial or invalid record off segment %d at %d", size-valid, meta.write.file, valid)
	}
	out := meta
	out.write.pos = valid
	out.depth += n
	if out != meta {
		rep.notef("meta depth=%d write=%s -> depth=%d write=%s (%d records written after the last sync)",
			meta.depth, meta.write, out.depth, out.write, n)
		if err := writeDQMeta(f, out); err != nil {
			return meta, 0, false, err
		}
	}
	return out, extra, true, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
