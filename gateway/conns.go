package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/switchboardhq/switchboard/internal/httpx"
)

// limitListener is a net.Listener that holds at most max connections open
// at once, Accept waiting for one to close past that, and at most
// perClient from one client address (httpx.ClientKey; 0 for no limit), a
// connection past that being closed as soon as it is accepted: so that
// slow or idle clients cannot exhaust the process's file descriptors, and
// one client cannot take every connection. It is safe for concurrent use.
type limitListener struct {
	net.Listener
	slots     chan struct{} // one value per open connection
	perClient int

	mu       sync.Mutex
	byClient map[string]int // open connections per client key

	closeOnce sync.Once
	done      chan struct{} // closed by Close
}

var _ net.Listener = (*limitListener)(nil)

// newLimitListener wraps ln; max must be at least 1.
func newLimitListener(ln net.Listener, max, perClient int) *limitListener {
	return &limitListener{
		Listener:  ln,
		slots:     make(chan struct{}, max),
		perClient: perClient,
		byClient:  map[string]int{},
		done:      make(chan struct{}),
	}
}

// Accept waits for a free slot, then for a connection from a client under
// its own limit.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		select {
		case l.slots <- struct{}{}:
		case <-l.done:
			return nil, net.ErrClosed
		}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.slots
			return nil, err
		}
		key := httpx.ClientKey(c.RemoteAddr().String())
		if !l.admit(key) {
			c.Close()
			<-l.slots
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

// admit counts a connection from key, reporting false (and counting
// nothing) when key holds perClient already.
func (l *limitListener) admit(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perClient > 0 && l.byClient[key] >= l.perClient {
		return false
	}
	l.byClient[key]++
	return true
}

// release gives back the slot of a closed connection from key.
func (l *limitListener) release(key string) {
	l.mu.Lock()
	if l.byClient[key]--; l.byClient[key] <= 0 {
		delete(l.byClient, key)
	}
	l.mu.Unlock()
	<-l.slots
}

// Close closes the listener; an Accept waiting for a slot returns.
func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitedConn gives back its slot once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// lingerBytes bounds how much of a request body left unread by its handler
// is read and discarded after the response.
const lingerBytes = 8 << 20

// lingerTimeout bounds the time spent doing so.
const lingerTimeout = 5 * time.Second

// lingering is middleware that, once next has answered a request whose
// body it left unread (a 413, a 401…), sends the response whole, with its
// Content-Length, and then reads and discards up to lingerBytes more of the
// body, for at most timeout. A client that writes its whole body before
// reading (Python's urllib) then reads the answer, instead of a connection
// reset: closing a connection with unread data in it resets it, and the
// client's unread response is lost with it. A body whose reading failed (a
// read deadline, a malformed chunk) is not waited for. Either way the
// response closes the connection: what is left of the body must not be
// read as the next request.
func lingering(next http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		rc := http.NewResponseController(w)
		// Lets the body be read after the response is written; without
		// it the server gives up on a large unread body and closes.
		_ = rc.EnableFullDuplex()
		body := &watchedBody{ReadCloser: r.Body}
		r2 := r.WithContext(r.Context()) // a shallow copy
		r2.Body = body
		cw := &closingWriter{ResponseWriter: w, body: body}
		next.ServeHTTP(cw, r2)
		cw.release()
		if body.err != nil { // read to the end, or failed
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
		_ = rc.SetReadDeadline(time.Now().Add(timeout))
		_, _ = io.CopyN(io.Discard, r.Body, lingerBytes)
	})
}

// heldMax bounds the response body a closingWriter holds back.
const heldMax = 64 << 10

// closingWriter answers "Connection: close" to a request whose body was
// not read to its end. When that body is merely unread, it holds the
// response back (up to heldMax bytes) until release, which sends it with
// its Content-Length, so that it is complete on the wire before the
// lingering drain, not ended by it.
type closingWriter struct {
	http.ResponseWriter
	body        *watchedBody
	wroteHeader bool
	holding     bool
	status      int
	held        []byte
}

func (w *closingWriter) WriteHeader(code int) {
	if w.wroteHeader || code < 200 {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.wroteHeader = true
	if !errors.Is(w.body.err, io.EOF) {
		w.Header().Set("Connection", "close")
		if w.body.err == nil {
			w.holding, w.status = true, code
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closingWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.holding {
		if len(w.held)+len(b) <= heldMax {
			w.held = append(w.held, b...)
			return len(b), nil
		}
		w.release()
	}
	return w.ResponseWriter.Write(b)
}

// release sends what w holds back, if anything.
func (w *closingWriter) release() {
	if !w.holding {
		return
	}
	w.holding = false
	if w.status != http.StatusNoContent && w.status != http.StatusNotModified {
		w.Header().Set("Content-Length", strconv.Itoa(len(w.held)))
	}
	w.ResponseWriter.WriteHeader(w.status)
	if len(w.held) > 0 {
		_, _ = w.ResponseWriter.Write(w.held)
	}
	w.held = nil
}

// FlushError sends what w holds back and flushes.
func (w *closingWriter) FlushError() error {
	w.release()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *closingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// watchedBody remembers the first error (io.EOF included) of its reads.
type watchedBody struct {
	io.ReadCloser
	err error
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && b.err == nil {
		b.err = err
	}
	return n, err
}
