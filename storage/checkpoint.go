package storage

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluicedev/sluice/storage/vfs"
)

// Checkpoint file names inside a partition directory. hwCheckpoint is
// Kafka's replication-offset-checkpoint, which Kafka keeps once per data
// directory for all partitions; one file per partition needs no lock
// across partitions and goes with the directory on deletion.
const (
	logStartCheckpoint = "log-start-offset-checkpoint"
	recoveryCheckpoint = "recovery-point-offset-checkpoint"
	hwCheckpoint       = "high-watermark-checkpoint"
	epochCheckpoint    = "leader-epoch-checkpoint"
	tmpSuffix          = ".tmp"
)

// maxCheckpointSize bounds how much of a checkpoint file is read; real ones
// are a few hundred bytes.
const maxCheckpointSize = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// writeCheckpoint atomically replaces dir/name with rows of integers in the
// text format described in doc.go: write a temp file, fsync it, rename it
// over the old one, fsync the directory.
func writeCheckpoint(fsys vfs.FS, dir, name string, rows [][2]int64, arity int) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s 1\n%d\n", name, len(rows))
	for _, r := range rows {
		b.WriteString(strconv.FormatInt(r[0], 10))
		if arity == 2 {
			b.WriteByte(' ')
			b.WriteString(strconv.FormatInt(r[1], 10))
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "crc32c %08x\n", crc32.Checksum(b.Bytes(), crcTable))
	return writeFileAtomic(fsys, dir, name, b.Bytes())
}

// writeFileAtomic is the temp + fsync + rename + fsync-dir sequence.
func writeFileAtomic(fsys vfs.FS, dir, name string, data []byte) error {
	final := filepath.Join(dir, name)
	tmp := final + tmpSuffix
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, final); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	if err := fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// readFile reads a whole small file, refusing anything over limit bytes.
func readFile(fsys vfs.FS, path string, limit int64) ([]byte, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes", errCheckpoint, path, st.Size())
	}
	b := make([]byte, st.Size())
	if n, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(b)) {
		return nil, err
	}
	return b, nil
}

// readCheckpoint parses a file written by writeCheckpoint. A missing file
// returns an error satisfying errors.Is(err, fs.ErrNotExist); any damage
// returns errCheckpoint.
func readCheckpoint(fsys vfs.FS, dir, name string, arity int) ([][2]int64, error) {
	path := filepath.Join(dir, name)
	b, err := readFile(fsys, path, maxCheckpointSize)
	if err != nil {
		return nil, err
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", errCheckpoint, path, why) }
	body, trailer, ok := cutLastLine(b)
	if !ok {
		return nil, bad("no checksum line")
	}
	var sum uint32
	if _, err := fmt.Sscanf(trailer, "crc32c %08x", &sum); err != nil {
		return nil, bad("malformed checksum line")
	}
	if crc32.Checksum(body, crcTable) != sum {
		return nil, bad("checksum mismatch")
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) < 2 || lines[0] != name+" 1" {
		return nil, bad("unknown header")
	}
	n, err := strconv.Atoi(lines[1])
	if err != nil || n != len(lines)-2 {
		return nil, bad("row count mismatch")
	}
	rows := make([][2]int64, 0, n)
	for _, ln := range lines[2:] {
		fields := strings.Fields(ln)
		if len(fields) != arity {
			return nil, bad("wrong field count")
		}
		var r [2]int64
		for i, f := range fields {
			if r[i], err = strconv.ParseInt(f, 10, 64); err != nil {
				return nil, bad("bad number")
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// cutLastLine splits b into everything before its last line (including
// that newline) and the last line without its newline.
func cutLastLine(b []byte) (body []byte, last string, ok bool) {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return nil, "", false
	}
	i := bytes.LastIndexByte(b[:len(b)-1], '\n')
	if i < 0 {
		return nil, "", false
	}
	return b[:i+1], string(b[i+1 : len(b)-1]), true
}

// writeOffsetCheckpoint stores a single offset.
func writeOffsetCheckpoint(fsys vfs.FS, dir, name string, off int64) error {
	return writeCheckpoint(fsys, dir, name, [][2]int64{{off}}, 1)
}

// readOffsetCheckpoint loads a single offset written by
// writeOffsetCheckpoint.
func readOffsetCheckpoint(fsys vfs.FS, dir, name string) (int64, error) {
	rows, err := readCheckpoint(fsys, dir, name, 1)
	if err != nil {
		return 0, err
	}
	if len(rows) != 1 || rows[0][0] < 0 {
		return 0, fmt.Errorf("%w: %s: want one non-negative offset", errCheckpoint, name)
	}
	return rows[0][0], nil
}
