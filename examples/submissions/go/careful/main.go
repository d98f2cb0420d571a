// Command careful is a careful lab client in Go: it speaks the lab's driver protocol
// (docs/grading.md, "Any language: the driver protocol") on stdin and stdout, and the lab
// protocol, length-prefixed, on one TCP connection.
//
// What makes it careful:
//
//   - send writes the whole frame, looping until every byte is taken;
//   - recv reads exactly the 5-byte header, then exactly the payload length it announces;
//   - connect may take at most connectTimeout, and every read or write must make progress
//     within ioTimeout: a peer that goes quiet becomes a TimeoutError, never a hang;
//   - every failure is reported with a Python-style name and the errno behind it.
//
// It does not reconnect: a broken connection is reported, and stays broken.
//
// The names it reports (the "error" of a failure response):
//
//	TimeoutError            a deadline passed (errno null), or the kernel gave up (ETIMEDOUT)
//	ConnectionRefusedError  ECONNREFUSED
//	ConnectionResetError    ECONNRESET
//	BrokenPipeError         EPIPE, ESHUTDOWN
//	ConnectionAbortedError  ECONNABORTED
//	ConnectionError         the peer closed the connection cleanly between two frames
//	IncompleteMessage       the peer closed the connection inside a frame
//	FrameTooLarge           a header announced more than maxPayload bytes
//	gaierror                the host name could not be resolved
//	OSError                 any other failure of the socket (errno when there is one)
//	BadRequest              a request line this program cannot read (a judge bug, not a network failure)
//
// Build (from this folder, as go.mod requires):
//
//	CGO_ENABLED=0 go build -trimpath -o careful-go .
//
// Stdout carries protocol lines only; logs go to stderr.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

const (
	protocolVersion = 1
	maxLine         = 4 * 1024 * 1024 // driver protocol MAX_LINE, newline included
	headerSize      = 5               // uint32 payload length + uint8 type
	maxPayload      = 16 * 1024 * 1024
	// The lab's careful client waits 3 s for a connect; a submission is graded against
	// that bound plus a little slack, so this must not be longer.
	connectTimeout = 3 * time.Second
	// Longest wait for any progress on a read or a write. Frozen and vanished peers must be
	// reported within 4 s of the wait starting (+0.5 s slack), a stalled send within 8 s.
	ioTimeout = 3 * time.Second
	// Writes go out in chunks so that each chunk's deadline measures progress, not size.
	writeChunk = 64 * 1024
)

// request is one line from the judge; which fields matter depends on Op.
type request struct {
	Op       string  `json:"op"`
	Protocol *int    `json:"protocol"`
	Host     *string `json:"host"`
	Port     *int    `json:"port"`
	Data     *string `json:"data"`
}

// The successful responses, as structs so that "ok" comes first on the line.
type okReply struct {
	OK bool `json:"ok"`
}

type helloReply struct {
	OK       bool   `json:"ok"`
	Protocol int    `json:"protocol"`
	Framing  string `json:"framing"`
}

type dataReply struct {
	OK   bool   `json:"ok"`
	Data string `json:"data"`
}

// failure is how a request reports that the conversation failed.
type failure struct {
	OK      bool    `json:"ok"`
	Name    string  `json:"error"`
	Errno   *string `json:"errno"`
	Message string  `json:"message"`
}

func (f *failure) Error() string { return f.Name + ": " + f.Message }

func fail(name string, errno *string, format string, args ...any) *failure {
	msg := fmt.Sprintf(format, args...)
	if len(msg) > 1000 { // the judge keeps at most 1000 characters
		msg = msg[:1000]
	}
	return &failure{OK: false, Name: name, Errno: errno, Message: msg}
}

// errnoNames holds the symbolic names of the errnos a TCP client can meet; an errno that is
// not here is reported as null rather than guessed.
var errnoNames = map[syscall.Errno]string{
	syscall.EACCES: "EACCES", syscall.EADDRINUSE: "EADDRINUSE", syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
	syscall.EAFNOSUPPORT: "EAFNOSUPPORT", syscall.EAGAIN: "EAGAIN", syscall.EALREADY: "EALREADY",
	syscall.EBADF: "EBADF", syscall.ECONNABORTED: "ECONNABORTED", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ECONNRESET: "ECONNRESET", syscall.EHOSTDOWN: "EHOSTDOWN", syscall.EHOSTUNREACH: "EHOSTUNREACH",
	syscall.EINPROGRESS: "EINPROGRESS", syscall.EINTR: "EINTR", syscall.EINVAL: "EINVAL", syscall.EIO: "EIO",
	syscall.EISCONN: "EISCONN", syscall.EMFILE: "EMFILE", syscall.EMSGSIZE: "EMSGSIZE",
	syscall.ENETDOWN: "ENETDOWN", syscall.ENETRESET: "ENETRESET", syscall.ENETUNREACH: "ENETUNREACH",
	syscall.ENFILE: "ENFILE", syscall.ENOBUFS: "ENOBUFS", syscall.ENOMEM: "ENOMEM", syscall.ENOTCONN: "ENOTCONN",
	syscall.ENOTSOCK: "ENOTSOCK", syscall.EPERM: "EPERM", syscall.EPIPE: "EPIPE", syscall.EPROTO: "EPROTO",
	syscall.ESHUTDOWN: "ESHUTDOWN", syscall.ETIMEDOUT: "ETIMEDOUT",
}

// pythonName is the exception Python raises for an errno (PEP 3151), so the lab compares like with like.
func pythonName(e syscall.Errno) string {
	switch e {
	case syscall.ECONNREFUSED:
		return "ConnectionRefusedError"
	case syscall.ECONNRESET:
		return "ConnectionResetError"
	case syscall.EPIPE, syscall.ESHUTDOWN:
		return "BrokenPipeError"
	case syscall.ECONNABORTED:
		return "ConnectionAbortedError"
	case syscall.ETIMEDOUT:
		return "TimeoutError"
	case syscall.EAGAIN, syscall.EALREADY, syscall.EINPROGRESS:
		return "BlockingIOError"
	case syscall.EINTR:
		return "InterruptedError"
	}
	return "OSError"
}

func errnoName(e syscall.Errno) *string {
	if name, ok := errnoNames[e]; ok {
		return &name
	}
	return nil
}

// describe turns a Go error from the net package into the failure the judge is told about.
func describe(err error, doing string) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	// Deadlines first: Go reports its own deadlines without an errno.
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fail("TimeoutError", nil, "%s: no progress for %s: %v", doing, ioTimeout, err)
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsTimeout {
			return fail("TimeoutError", nil, "%v", err)
		}
		return fail("gaierror", nil, "%v", err)
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return fail(pythonName(errno), errnoName(errno), "%v", err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fail("TimeoutError", nil, "%s timed out: %v", doing, err)
	}
	if errors.Is(err, net.ErrClosed) {
		return fail("OSError", errnoName(syscall.EBADF), "%v", err)
	}
	return fail("OSError", nil, "%v", err)
}

// client is the one connection this program makes; nil until connect succeeds.
type client struct {
	conn   net.Conn
	header [headerSize]byte
}

func (c *client) connect(host string, port int) error {
	if c.conn != nil {
		return fail("OSError", errnoName(syscall.EISCONN), "already connected; this client does not reconnect")
	}
	dialer := net.Dialer{Timeout: connectTimeout}
	conn, err := dialer.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return describe(err, "connect")
	}
	c.conn = conn
	return nil
}

func (c *client) notConnected() *failure {
	return fail("OSError", errnoName(syscall.ENOTCONN), "not connected")
}

// send writes the whole frame. Each chunk gets its own deadline, renewed while bytes move,
// so a slow peer is not punished for a big message but a peer that stopped reading is caught.
func (c *client) send(frame []byte) error {
	if c.conn == nil {
		return c.notConnected()
	}
	for len(frame) > 0 {
		chunk := frame[:min(len(frame), writeChunk)]
		if err := c.conn.SetWriteDeadline(time.Now().Add(ioTimeout)); err != nil {
			return describe(err, "send")
		}
		n, err := c.conn.Write(chunk)
		frame = frame[n:]
		if err != nil {
			if n > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				continue // it moved: give the rest a fresh deadline
			}
			return describe(err, "send")
		}
	}
	return nil
}

// recv reads exactly one frame: the header, then the payload length the header announces.
func (c *client) recv() ([]byte, error) {
	if c.conn == nil {
		return nil, c.notConnected()
	}
	if err := c.readFull(c.header[:], 0, 0); err != nil {
		return nil, err
	}
	length := binary.BigEndian.Uint32(c.header[:4])
	if length > maxPayload {
		return nil, fail("FrameTooLarge", nil, "the peer announced a %d-byte payload; at most %d are accepted",
			length, maxPayload)
	}
	frame := make([]byte, headerSize+int(length))
	copy(frame, c.header[:])
	if err := c.readFull(frame[headerSize:], headerSize, len(frame)); err != nil {
		return nil, err
	}
	return frame, nil
}

// readFull fills buf; before counts the frame's bytes already read, total is the frame's
// length (0 while the header is still being read, when it is not known yet).
func (c *client) readFull(buf []byte, before, total int) error {
	have := 0
	for have < len(buf) {
		// A fresh deadline per read: the bound is on silence, not on the frame's size.
		if err := c.conn.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
			return describe(err, "recv")
		}
		n, err := c.conn.Read(buf[have:])
		have += n
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			if have < len(buf) {
				return closedAt(before+have, total)
			}
			return nil
		}
		return describe(err, "recv")
	}
	return nil
}

func closedAt(received, total int) *failure {
	switch {
	case received == 0:
		return fail("ConnectionError", nil, "the peer closed the connection between messages")
	case total == 0:
		return fail("IncompleteMessage", nil, "the peer closed the connection after %d of %d header bytes",
			received, headerSize)
	default:
		return fail("IncompleteMessage", nil, "the peer closed the connection after %d of %d frame bytes",
			received, total)
	}
}

func (c *client) close() {
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
}

// handle answers one request line; the answer is a JSON-encodable value.
func (c *client) handle(line []byte) any {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return fail("BadRequest", nil, "not a JSON object: %v", err)
	}
	switch req.Op {
	case "hello":
		if req.Protocol == nil || *req.Protocol != protocolVersion {
			return fail("BadRequest", nil, "this program speaks driver protocol %d only", protocolVersion)
		}
		return helloReply{OK: true, Protocol: protocolVersion, Framing: "length-prefixed"}
	case "connect":
		if req.Host == nil || req.Port == nil {
			return fail("BadRequest", nil, "connect needs host and port")
		}
		if err := c.connect(*req.Host, *req.Port); err != nil {
			return describe(err, "connect")
		}
	case "send":
		if req.Data == nil {
			return fail("BadRequest", nil, "send needs data")
		}
		frame, err := base64.StdEncoding.DecodeString(*req.Data)
		if err != nil {
			return fail("BadRequest", nil, "data is not base64: %v", err)
		}
		if err := c.send(frame); err != nil {
			return describe(err, "send")
		}
	case "recv":
		frame, err := c.recv()
		if err != nil {
			return describe(err, "recv")
		}
		return dataReply{OK: true, Data: base64.StdEncoding.EncodeToString(frame)}
	case "close":
		c.close()
	default:
		return fail("BadRequest", nil, "unknown op %q", req.Op)
	}
	return okReply{OK: true}
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line without its newline. A line longer than maxLine is skipped
// up to its newline and reported as errLineTooLong, so the next request is read in step.
func readLine(in *bufio.Reader) ([]byte, error) {
	var line []byte
	tooLong := false
	for {
		part, err := in.ReadSlice('\n')
		if !tooLong {
			line = append(line, part...)
			if len(line) > maxLine {
				tooLong, line = true, nil
			}
		}
		switch {
		case err == nil:
			if tooLong {
				return nil, errLineTooLong
			}
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err // EOF or a broken stdin: either way the judge is gone
		}
	}
}

func main() {
	log.SetFlags(log.Lmicroseconds)
	log.SetPrefix("careful-go: ")
	in := bufio.NewReaderSize(os.Stdin, 64*1024)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false) // keep "->" in Go's error texts readable
	c := &client{}
	defer c.close()
	for {
		line, err := readLine(in)
		var answer any
		switch {
		case errors.Is(err, errLineTooLong):
			answer = fail("BadRequest", nil, "request line longer than %d bytes", maxLine)
		case err != nil:
			return // EOF: the judge closed the channel, so the conversation is over
		default:
			answer = c.handle(line)
		}
		if f, ok := answer.(*failure); ok {
			log.Print(f)
		}
		// Encode writes the line, newline included, with one write: nothing else goes to stdout.
		if err := out.Encode(answer); err != nil {
			log.Printf("cannot answer: %v", err)
			return
		}
	}
}
