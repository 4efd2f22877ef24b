package media

import (
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
)

// headerCache parses a received packet's RTP header once, into a header
// and attributes that belong to the stream, for the interceptors above it
// (receiver reports, NACK generation): without it each of them finds no
// attributes and allocates a map and a header of its own for every packet
// received. It must be the innermost interceptor of the publish
// connection (newPublishEngine adds it first).
//
// The attributes returned are reused for the stream's next packet: a
// reader must not keep them past its Read. The SFU's layer readers ignore
// them (uptrack.go).
type headerCacheFactory struct{}

func (headerCacheFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &headerCache{}, nil
}

type headerCache struct{ interceptor.NoOp }

func (*headerCache) BindRemoteStream(_ *interceptor.StreamInfo, reader interceptor.RTPReader) interceptor.RTPReader {
	// One goroutine reads a stream: the header and attributes are its own.
	attrs := interceptor.Attributes{}
	var hdr *rtp.Header
	return interceptor.RTPReaderFunc(func(b []byte, a interceptor.Attributes) (int, interceptor.Attributes, error) {
		n, a, err := reader.Read(b, a)
		if err != nil || a != nil {
			return n, a, err
		}
		if hdr == nil {
			// The first packet puts a header under pion's own key.
			h, perr := attrs.GetRTPHeader(b[:n])
			if perr != nil {
				return n, nil, nil
			}
			hdr = h
			return n, attrs, nil
		}
		if _, perr := hdr.Unmarshal(b[:n]); perr != nil {
			// The interceptors above parse it again and refuse it.
			return n, nil, nil
		}
		return n, attrs, nil
	})
}
