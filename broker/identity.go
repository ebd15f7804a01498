package broker

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// identityFile records, like Kafka's meta.properties, which node a data
// directory belongs to and a random incarnation id. The incarnation lets a
// broker restarted after a crash take over its stale etcd registration at
// once instead of waiting out the dead process's lease.
const identityFile = "meta.properties"

// loadIdentity reads or creates the data directory's identity. A directory
// written by another node id is refused, as Kafka refuses it.
func (b *Broker) loadIdentity() (string, error) {
	path := filepath.Join(b.cfg.DataDir, identityFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b.writeIdentity(path)
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	props := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			props[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if id := props["node.id"]; id != strconv.Itoa(int(b.cfg.NodeID)) {
		return "", fmt.Errorf("data directory %s belongs to node %s, not %d", b.cfg.DataDir, id, b.cfg.NodeID)
	}
	if props["incarnation"] == "" {
		return b.writeIdentity(path)
	}
	return props["incarnation"], nil
}

func (b *Broker) writeIdentity(path string) (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("incarnation id: %w", err)
	}
	inc := hex.EncodeToString(raw[:])
	body := fmt.Sprintf("# written by sluice; do not edit\nversion=1\nnode.id=%d\nincarnation=%s\n", b.cfg.NodeID, inc)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteString(body); err != nil {
		f.Close()
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("rename %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return inc, nil
}
