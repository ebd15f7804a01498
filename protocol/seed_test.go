package protocol

import (
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// seedRequest is one kmsg request type at one version, encoded as a whole
// frame body (header and body, without the size prefix).
type seedRequest struct {
	key, version int16
	filled       bool // arrays hold one populated element instead of none
	frame        []byte
}

// allSeedRequests encodes every request type kmsg knows at every version
// from 0 to its MaxVersion, once with zero values and once with every
// array holding one populated element.
func allSeedRequests(tb testing.TB) []seedRequest {
	tb.Helper()
	var out []seedRequest
	for key := int16(0); key < 256; key++ {
		if kmsg.RequestForKey(key) == nil {
			continue
		}
		for v := int16(0); v <= kmsg.RequestForKey(key).MaxVersion(); v++ {
			for _, filled := range []bool{false, true} {
				req := kmsg.RequestForKey(key)
				if filled {
					fillValue(reflect.ValueOf(req).Elem(), 0)
				}
				req.SetVersion(v)
				frame := appendRequestFrame(nil, req, int32(key)<<16|int32(v), "seed-client")
				out = append(out, seedRequest{key: key, version: v, filled: filled, frame: frame})
			}
		}
	}
	return out
}

// appendRequestFrame appends a request frame body (no size prefix) the way
// a client writes it. kmsg's RequestFormatter is not used because it omits
// the body of ControlledShutdown v0.
func appendRequestFrame(dst []byte, req kmsg.Request, corr int32, clientID string) []byte {
	dst = kbin.AppendInt16(dst, req.Key())
	dst = kbin.AppendInt16(dst, req.GetVersion())
	dst = kbin.AppendInt32(dst, corr)
	if req.Key() != keyControlledShutdown || req.GetVersion() != 0 {
		dst = kbin.AppendNullableString(dst, &clientID)
		if req.IsFlexible() {
			dst = append(dst, 0)
		}
	}
	return req.AppendTo(dst)
}

// fillValue sets every exported field reachable from v to a non-zero
// value, giving slices one element, so that seeds exercise array, string
// and nested-struct decoding. Depth bounds recursive types.
func fillValue(v reflect.Value, depth int) {
	if depth > 6 {
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range v.NumField() {
			f := t.Field(i)
			if !f.IsExported() || f.Name == "Version" || f.Type == reflect.TypeFor[kmsg.Tags]() {
				continue
			}
			fillValue(v.Field(i), depth+1)
		}
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(1)
	case reflect.Float64:
		v.SetFloat(1.5)
	case reflect.Array:
		for i := range v.Len() {
			fillValue(v.Index(i), depth+1)
		}
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillValue(p.Elem(), depth+1)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 1, 1)
		fillValue(s.Index(0), depth+1)
		v.Set(s)
	}
}
