package media

import (
	"crypto/rand"
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
)

// Transport-wide congestion control feedback to publishers
// (draft-holmer-rmcat-transport-wide-cc-extensions): the browser's
// congestion control sizes its simulcast layers by it. pion's own
// interceptor hands every received packet to its loop goroutine through a
// channel, after allocating attributes and a parsed header for it; this
// one records the arrival in the reading goroutine, under a lock held for a
// few hundred nanoseconds, and its loop wakes only to send feedback.
// Only video negotiates the extension (newPublishEngine): an audio stream's
// rate is the codec's, so a publisher of audio alone costs nothing here.

// twccInterval is how often feedback is sent while packets arrive.
const twccInterval = 100 * time.Millisecond

type twccFeedbackFactory struct{}

func (twccFeedbackFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	var ssrc [4]byte
	_, _ = rand.Read(ssrc[:])
	return &twccFeedback{
		recorder: twcc.NewRecorder(binary.BigEndian.Uint32(ssrc[:])),
		start:    time.Now(),
		closed:   make(chan struct{}),
	}, nil
}

// twccFeedback is the interceptor of one publish peer connection.
type twccFeedback struct {
	interceptor.NoOp
	start  time.Time
	closed chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	recorder *twcc.Recorder
	// writer is the connection's RTCP writer; the loop starts with the
	// first stream that carries the extension.
	writer    interceptor.RTCPWriter
	running   bool
	isClosing bool
}

func (t *twccFeedback) BindRTCPWriter(w interceptor.RTCPWriter) interceptor.RTCPWriter {
	t.mu.Lock()
	t.writer = w
	t.mu.Unlock()
	return w
}

func (t *twccFeedback) BindRemoteStream(info *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	var id uint8
	for _, e := range info.RTPHeaderExtensions {
		if e.URI == sdp.TransportCCURI && e.ID > 0 && e.ID < 256 {
			id = uint8(e.ID)
		}
	}
	if id == 0 {
		return reader
	}
	t.startLoop()
	ssrc := info.SSRC
	// One goroutine reads a stream, so its parsed header is reused.
	var h rtp.Header
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil {
			return n, a, err
		}
		if _, perr := h.Unmarshal(b[:n]); perr != nil {
			return n, a, nil
		}
		if ext := h.GetExtension(id); len(ext) >= 2 {
			arrival := time.Since(t.start).Microseconds()
			t.mu.Lock()
			t.recorder.Record(ssrc, binary.BigEndian.Uint16(ext), arrival)
			t.mu.Unlock()
		}
		return n, a, nil
	})
}

func (t *twccFeedback) startLoop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running || t.isClosing || t.writer == nil {
		return
	}
	t.running = true
	w := t.writer
	t.wg.Go(func() { t.loop(w) })
}

func (t *twccFeedback) loop(w interceptor.RTCPWriter) {
	ticker := time.NewTicker(twccInterval)
	defer ticker.Stop()
	for {
		select {
		case <-t.closed:
			return
		case <-ticker.C:
		}
		t.mu.Lock()
		pkts := t.recorder.BuildFeedbackPacket()
		t.mu.Unlock()
		if len(pkts) == 0 {
			continue
		}
		if _, err := w.Write(pkts, nil); err != nil {
			// The connection is closing; its Close stops the loop.
			continue
		}
	}
}

func (t *twccFeedback) Close() error {
	t.mu.Lock()
	if !t.isClosing {
		t.isClosing = true
		close(t.closed)
	}
	t.mu.Unlock()
	t.wg.Wait()
	return nil
}
