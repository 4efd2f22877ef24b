package mediabench

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// floorRounds rounds of about floorRound datagrams go each way, with
// floorPause between them so that the receivers keep up, as the nodes'
// clients do, and the pause's own cost spreads over many datagrams.
const (
	floorRounds = 1500
	floorRound  = 64
	floorPause  = 200 * time.Microsecond
)

// MeasureFloor sends size-byte datagrams from one locked OS thread to dests
// loopback sockets, in fan-outs of one datagram to each: with sendto, then
// as many with sendmmsg. It divides the thread's own CPU time
// (RUSAGE_THREAD) by the datagrams sent. Goroutines on other threads drain
// the receivers.
func MeasureFloor(dests, size int) (Floor, error) {
	f := Floor{DatagramBytes: size, Destinations: dests}
	if err := checkFloor(dests, size); err != nil {
		return f, err
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	var wg sync.WaitGroup
	var receivers []*net.UDPConn
	defer func() {
		for _, r := range receivers {
			r.Close()
		}
		wg.Wait()
	}()
	addrs := make([]netip.AddrPort, dests)
	for i := range addrs {
		r, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		if err != nil {
			return f, fmt.Errorf("floor: receiver: %w", err)
		}
		_ = r.SetReadBuffer(clientReadBuffer)
		receivers = append(receivers, r)
		addrs[i] = r.LocalAddr().(*net.UDPAddr).AddrPort()
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				if _, _, err := r.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
			}
		})
	}
	sender, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		return f, fmt.Errorf("floor: sender: %w", err)
	}
	defer sender.Close()
	_ = sender.SetWriteBuffer(clientReadBuffer)
	payload := make([]byte, size)
	fanouts := (floorRound + dests - 1) / dests
	packets := floorRounds * fanouts * dests

	perPacket, err := threadCPU(paced(fanouts, func() error {
		for _, a := range addrs {
			if _, err := sender.WriteToUDPAddrPort(payload, a); err != nil {
				return err
			}
		}
		return nil
	}), packets)
	if err != nil {
		return f, fmt.Errorf("floor: sendto: %w", err)
	}
	f.Sendto = perPacket

	pc := ipv4.NewPacketConn(sender)
	msgs := make([]ipv4.Message, dests)
	for i, a := range addrs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{payload}, Addr: net.UDPAddrFromAddrPort(a)}
	}
	perPacket, err = threadCPU(paced(fanouts, func() error {
		for rest := msgs; len(rest) > 0; {
			n, err := pc.WriteBatch(rest, 0)
			if err != nil {
				return err
			}
			if n <= 0 {
				return errors.New("sendmmsg sent nothing")
			}
			rest = rest[n:]
		}
		return nil
	}), packets)
	if err != nil {
		return f, fmt.Errorf("floor: sendmmsg: %w", err)
	}
	f.Sendmmsg = perPacket
	f.Packets = 2 * packets
	return f, nil
}

// paced sends floorRounds rounds of fanouts fan-outs, pausing after each.
func paced(fanouts int, fanout func() error) func() error {
	return func() error {
		for range floorRounds {
			for range fanouts {
				if err := fanout(); err != nil {
					return err
				}
			}
			time.Sleep(floorPause)
		}
		return nil
	}
}

// threadCPU runs send on one locked OS thread and returns that thread's CPU
// time, in microseconds, per packet.
func threadCPU(send func() error, packets int) (float64, error) {
	type result struct {
		us  float64
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var before, after syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &before); err != nil {
			done <- result{err: fmt.Errorf("getrusage: %w", err)}
			return
		}
		if err := send(); err != nil {
			done <- result{err: err}
			return
		}
		if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &after); err != nil {
			done <- result{err: fmt.Errorf("getrusage: %w", err)}
			return
		}
		cpu := after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano()
		done <- result{us: math.Round(float64(cpu)/float64(packets)) / 1000}
	}()
	r := <-done
	return r.us, r.err
}
