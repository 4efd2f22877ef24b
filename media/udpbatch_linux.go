package media

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgWriter sends a batch with one sendmmsg(2). Its headers point into the
// queued datagrams; the sockaddrs are its own, one per batch entry.
type mmsgWriter struct {
	raw   syscall.RawConn
	conn  *net.UDPConn
	inet6 bool
	hdrs  [sendBatchMax]unix.Mmsghdr
	iovs  [sendBatchMax]unix.Iovec
	sa6   [sendBatchMax]unix.RawSockaddrInet6
	sa4   [sendBatchMax]unix.RawSockaddrInet4
	// call is sendmmsg bound once, so that a batch allocates nothing; n
	// is its input, sent and errno its results.
	call  func(fd uintptr) bool
	n     int
	sent  int
	errno syscall.Errno
}

func newBatchWriter(conn *net.UDPConn) (batchWriter, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("media socket: %w", err)
	}
	var domain int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		domain, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return nil, fmt.Errorf("media socket: %w", err)
	}
	if serr != nil {
		return nil, fmt.Errorf("media socket: address family: %w", serr)
	}
	w := &mmsgWriter{raw: raw, conn: conn, inet6: domain == unix.AF_INET6}
	w.call = w.sendmmsg
	return w, nil
}

var errAddressFamily = errors.New("destination not reachable from the media socket's address family")

func (w *mmsgWriter) write(ds []*outDatagram) (int, error) {
	// A destination with a zone (a link-local IPv6 address) needs its
	// interface's index: it goes alone, the way net does it.
	if ds[0].to.Addr().Zone() != "" {
		d := ds[0]
		if _, err := w.conn.WriteToUDPAddrPort(d.buf[:d.n], d.to); err != nil {
			return 0, err
		}
		return 1, nil
	}
	n := 0
	for _, d := range ds {
		addr := d.to.Addr()
		if addr.Zone() != "" {
			break
		}
		h := &w.hdrs[n]
		*h = unix.Mmsghdr{}
		w.iovs[n].Base = &d.buf[0]
		w.iovs[n].SetLen(d.n)
		h.Hdr.Iov = &w.iovs[n]
		h.Hdr.SetIovlen(1)
		switch {
		case w.inet6:
			sa := &w.sa6[n]
			*sa = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.As16()}
			putPort(&sa.Port, d.to.Port())
			h.Hdr.Name = (*byte)(unsafe.Pointer(sa))
			h.Hdr.Namelen = unix.SizeofSockaddrInet6
		case addr.Is4() || addr.Is4In6():
			sa := &w.sa4[n]
			*sa = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.Unmap().As4()}
			putPort(&sa.Port, d.to.Port())
			h.Hdr.Name = (*byte)(unsafe.Pointer(sa))
			h.Hdr.Namelen = unix.SizeofSockaddrInet4
		default:
			if n == 0 {
				return 0, errAddressFamily
			}
		}
		if h.Hdr.Name == nil {
			break
		}
		n++
	}
	w.n = n
	if err := w.raw.Write(w.call); err != nil {
		return 0, err
	}
	if w.errno != 0 {
		return 0, w.errno
	}
	return w.sent, nil
}

// sendmmsg sends the first n prepared headers on fd.
func (w *mmsgWriter) sendmmsg(fd uintptr) bool {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(w.n), 0, 0, 0)
	for e == unix.EINTR {
		r, _, e = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[0])), uintptr(w.n), 0, 0, 0)
	}
	if e == unix.EAGAIN {
		// The socket buffer is full: wait until it drains.
		return false
	}
	w.sent, w.errno = int(r), e
	return true
}

// putPort stores a port in network byte order.
func putPort(p *uint16, port uint16) {
	b := (*[2]byte)(unsafe.Pointer(p))
	b[0], b[1] = byte(port>>8), byte(port)
}
