// Command naive is the lab's naive client written in Go: fixed-length messages of msglen
// bytes, blocking calls with no deadlines, one loop per direction. It is the Go twin of the
// HOWTO-style code the lab grades as "naive", and should get the same verdicts: it hangs
// wherever the peer goes quiet, because nothing here ever gives up waiting.
//
// It speaks the lab's driver protocol (docs/grading.md) on stdin and stdout. The names it
// reports: RuntimeError "socket connection broken" when the peer closes (a read or a write
// that moves no bytes), and for a failing socket call the Python name of its errno
// (ConnectionResetError, BrokenPipeError, ConnectionRefusedError, ...), else OSError.
//
// Build (from this folder, as go.mod requires):
//
//	CGO_ENABLED=0 go build -trimpath -o naive-go .
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"strconv"
	"syscall"
)

const msglen = 1024

type request struct {
	Op   string `json:"op"`
	Host string `json:"host"`
	Port int    `json:"port"`
	Data string `json:"data"`
}

type failure struct {
	OK      bool    `json:"ok"`
	Name    string  `json:"error"`
	Errno   *string `json:"errno"`
	Message string  `json:"message"`
}

func (f *failure) Error() string { return f.Name + ": " + f.Message }

var errnoNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED: "ECONNREFUSED", syscall.ECONNRESET: "ECONNRESET", syscall.EPIPE: "EPIPE",
	syscall.ETIMEDOUT: "ETIMEDOUT", syscall.ECONNABORTED: "ECONNABORTED", syscall.EHOSTUNREACH: "EHOSTUNREACH",
	syscall.ENETUNREACH: "ENETUNREACH", syscall.ENOTCONN: "ENOTCONN",
}

var pythonNames = map[syscall.Errno]string{
	syscall.ECONNREFUSED: "ConnectionRefusedError", syscall.ECONNRESET: "ConnectionResetError",
	syscall.EPIPE: "BrokenPipeError", syscall.ETIMEDOUT: "TimeoutError", syscall.ECONNABORTED: "ConnectionAbortedError",
}

// describe names a socket error the way Python would raise it.
func describe(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	out := &failure{Name: "OSError", Message: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name, ok := pythonNames[errno]; ok {
			out.Name = name
		}
		if name, ok := errnoNames[errno]; ok {
			out.Errno = &name
		}
	}
	return out
}

var broken = &failure{Name: "RuntimeError", Message: "socket connection broken"}

type mySocket struct {
	conn net.Conn
}

func (s *mySocket) connect(host string, port int) error {
	conn, err := net.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port))) // no timeout: the kernel decides
	if err != nil {
		return err
	}
	s.conn = conn
	return nil
}

func (s *mySocket) mysend(msg []byte) error {
	if s.conn == nil {
		return &failure{Name: "OSError", Message: "not connected"}
	}
	total := 0
	for total < msglen {
		sent, err := s.conn.Write(msg[total:])
		if err != nil {
			return err
		}
		if sent == 0 {
			return broken
		}
		total += sent
	}
	return nil
}

func (s *mySocket) myreceive() ([]byte, error) {
	if s.conn == nil {
		return nil, &failure{Name: "OSError", Message: "not connected"}
	}
	got := make([]byte, 0, msglen)
	buf := make([]byte, 2048)
	for len(got) < msglen {
		n, err := s.conn.Read(buf[:min(msglen-len(got), len(buf))])
		if n == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return nil, broken // the peer closed: no bytes will ever come
			}
			return nil, err
		}
		got = append(got, buf[:n]...)
	}
	return got, nil
}

func (s *mySocket) handle(line []byte) any {
	var req request
	if err := json.Unmarshal(line, &req); err != nil {
		return &failure{Name: "BadRequest", Message: fmt.Sprintf("not a JSON object: %v", err)}
	}
	var err error
	switch req.Op {
	case "hello":
		return map[string]any{"ok": true, "protocol": 1, "framing": "fixed", "msglen": msglen}
	case "connect":
		err = s.connect(req.Host, req.Port)
	case "send":
		var msg []byte
		if msg, err = base64.StdEncoding.DecodeString(req.Data); err == nil {
			err = s.mysend(msg)
		}
	case "recv":
		reply, err := s.myreceive()
		if err != nil {
			return describe(err)
		}
		return map[string]any{"ok": true, "data": base64.StdEncoding.EncodeToString(reply)}
	case "close":
		if s.conn != nil {
			s.conn.Close()
		}
	default:
		return &failure{Name: "BadRequest", Message: fmt.Sprintf("unknown op %q", req.Op)}
	}
	if err != nil {
		return describe(err)
	}
	return map[string]any{"ok": true}
}

func main() {
	log.SetPrefix("naive-go: ")
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 4*1024*1024)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	s := &mySocket{}
	for in.Scan() {
		if err := out.Encode(s.handle(in.Bytes())); err != nil {
			return
		}
	}
	if err := in.Err(); err != nil {
		log.Print(err) // a line over 4 MiB, or a broken stdin: give up, the judge sees the exit
	}
}
