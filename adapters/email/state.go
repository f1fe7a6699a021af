package email

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Cursor remembers where the watcher stopped in each mailbox: the mailbox's
// UIDVALIDITY and the highest UID it has dealt with (handled, ignored or
// refused). Implementations are safe for concurrent use and durable once
// Save returns.
type Cursor interface {
	// Load returns the saved position of mailbox, or zeros when none is.
	Load(ctx context.Context, mailbox string) (uidValidity, lastUID uint32, err error)
	// Save records the position of mailbox.
	Save(ctx context.Context, mailbox string, uidValidity, lastUID uint32) error
}

// FileCursor is a Cursor kept in one JSON file, cursor.json, in a
// directory, replaced atomically (write, fsync, rename, fsync the
// directory) on every Save. It is for one gateway process: replicas that
// share a PostgreSQL store must not watch the same mailbox.
type FileCursor struct {
	path string
	mu   sync.Mutex
}

// NewFileCursor returns a cursor stored in dir/cursor.json. It does no I/O.
func NewFileCursor(dir string) *FileCursor {
	return &FileCursor{path: filepath.Join(dir, "cursor.json")}
}

type cursorPos struct {
	UIDValidity uint32 `json:"uidvalidity"`
	LastUID     uint32 `json:"last_uid"`
}

func (c *FileCursor) read() (map[string]cursorPos, error) {
	b, err := os.ReadFile(c.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]cursorPos{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("email: cursor: %w", err)
	}
	m := map[string]cursorPos{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("email: cursor: %s: %w", c.path, err)
	}
	return m, nil
}

// Load implements Cursor.
func (c *FileCursor) Load(_ context.Context, mailbox string) (uint32, uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.read()
	if err != nil {
		return 0, 0, err
	}
	p := m[mailbox]
	return p.UIDValidity, p.LastUID, nil
}

// Save implements Cursor.
func (c *FileCursor) Save(_ context.Context, mailbox string, uidValidity, lastUID uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, err := c.read()
	if err != nil {
		return err
	}
	m[mailbox] = cursorPos{UIDValidity: uidValidity, LastUID: lastUID}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("email: cursor: %w", err)
	}
	if err := writeFileAtomic(c.path, b); err != nil {
		return fmt.Errorf("email: cursor: %w", err)
	}
	return nil
}

// Thread is what a reply needs to know about an email thread beyond its
// anchor (the root Message-ID).
type Thread struct {
	// Root is the thread root's Message-ID, the conversation ref.
	Root string `json:"root"`
	// To is who replies go to: the Reply-To, else the From, of the first
	// message the gateway saw in the thread.
	To []string `json:"to"`
	// ToName is the display name of the first To address.
	ToName string `json:"to_name,omitempty"`
	// Subject is the thread's subject without Re:/Fwd: prefixes.
	Subject string `json:"subject"`
	// References is the thread's References chain, oldest first, ending
	// with the latest message (inbound or sent); replies set In-Reply-To to
	// its last element.
	References []string `json:"references"`
	// Handled lists the Message-IDs of inbound messages handed to the
	// router, so a rescan (UIDVALIDITY change) does not hand them again.
	Handled []string `json:"handled,omitempty"`
}

// maxChain bounds References and Handled; the root is always kept.
const maxChain = 100

// addRef appends id to the References chain, keeping the root and the most
// recent entries.
func (t *Thread) addRef(id string) {
	if id == "" || (len(t.References) > 0 && t.References[len(t.References)-1] == id) {
		return
	}
	t.References = append(t.References, id)
	if len(t.References) > maxChain {
		t.References = append(t.References[:1], t.References[len(t.References)-maxChain+1:]...)
	}
}

func (t *Thread) handled(id string) bool { return slices.Contains(t.Handled, id) }

func (t *Thread) markHandled(id string) {
	if t.handled(id) {
		return
	}
	t.Handled = append(t.Handled, id)
	if len(t.Handled) > maxChain {
		t.Handled = t.Handled[len(t.Handled)-maxChain:]
	}
}

// Threads keeps Thread records durably. Implementations are safe for
// concurrent use.
type Threads interface {
	// Load returns the thread rooted at root; ok is false when none is kept.
	Load(ctx context.Context, root string) (t Thread, ok bool, err error)
	// Update applies fn to the thread rooted at root (a zero Thread with
	// Root set when none is kept) and saves the result, atomically with
	// respect to other Updates in this process.
	Update(ctx context.Context, root string, fn func(*Thread)) (Thread, error)
}

// FileThreads keeps one JSON file per thread under dir/threads, named by a
// digest of the root Message-ID, each replaced atomically. Like FileCursor,
// it is for one gateway process.
type FileThreads struct {
	dir string
	mu  sync.Mutex
}

// NewFileThreads returns thread records kept under dir/threads. It does no
// I/O.
func NewFileThreads(dir string) *FileThreads {
	return &FileThreads{dir: filepath.Join(dir, "threads")}
}

func (f *FileThreads) path(root string) string {
	sum := sha256.Sum256([]byte(root))
	return filepath.Join(f.dir, hex.EncodeToString(sum[:20])+".json")
}

func (f *FileThreads) load(root string) (Thread, bool, error) {
	b, err := os.ReadFile(f.path(root))
	if errors.Is(err, fs.ErrNotExist) {
		return Thread{Root: root}, false, nil
	}
	if err != nil {
		return Thread{}, false, fmt.Errorf("email: thread: %w", err)
	}
	var t Thread
	if err := json.Unmarshal(b, &t); err != nil {
		return Thread{}, false, fmt.Errorf("email: thread %s: %w", root, err)
	}
	return t, true, nil
}

// Load implements Threads.
func (f *FileThreads) Load(_ context.Context, root string) (Thread, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.load(root)
}

// Update implements Threads.
func (f *FileThreads) Update(_ context.Context, root string, fn func(*Thread)) (Thread, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, _, err := f.load(root)
	if err != nil {
		return Thread{}, err
	}
	fn(&t)
	t.Root = root
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return Thread{}, fmt.Errorf("email: thread: %w", err)
	}
	if err := writeFileAtomic(f.path(root), b); err != nil {
		return Thread{}, fmt.Errorf("email: thread: %w", err)
	}
	return t, nil
}

// writeFileAtomic replaces path with b: it writes a temporary file in the
// same directory, syncs it, renames it over path and syncs the directory,
// so a crash leaves either the old or the new content.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
