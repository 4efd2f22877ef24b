//go:build !linux

package media

import "net"

// loopWriter sends a batch one datagram at a time where sendmmsg(2) is not
// available.
type loopWriter struct{ conn *net.UDPConn }

func newBatchWriter(conn *net.UDPConn) (batchWriter, error) {
	return loopWriter{conn}, nil
}

func (w loopWriter) write(ds []*outDatagram) (int, error) {
	for i, d := range ds {
		if _, err := w.conn.WriteToUDPAddrPort(d.buf[:d.n], d.to); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}
