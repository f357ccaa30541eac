package wsframetest_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/protocol/wsframe/wsframetest"
)

func TestReadFrame(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, ws.WriteFrame(&buf, ws.NewTextFrame([]byte("hello"))))
	require.NoError(t, ws.WriteFrame(&buf, ws.MaskFrame(ws.NewBinaryFrame([]byte{1, 2, 3}))))

	f, err := wsframetest.ReadFrame(&buf)
	require.NoError(t, err)
	assert.Equal(t, ws.OpText, f.Header.OpCode)
	assert.Equal(t, "hello", string(f.Payload))

	f, err = wsframetest.ReadFrame(&buf)
	require.NoError(t, err)
	assert.True(t, f.Header.Masked, "left masked, as ws.ReadFrame does")
	assert.Equal(t, []byte{1, 2, 3}, ws.UnmaskFrame(f).Payload)

	require.NoError(t, ws.WriteFrame(&buf, ws.NewCloseFrame(nil)))
	f, err = wsframetest.ReadFrame(&buf)
	require.NoError(t, err)
	assert.Nil(t, f.Payload, "an empty payload is nil, as ws.ReadFrame gives")

	_, err = wsframetest.ReadFrame(&buf)
	assert.ErrorIs(t, err, io.EOF)
}

func TestReadFrameRefusesARunawayLength(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, ws.WriteHeader(&buf, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1 << 40}))
	_, err := wsframetest.ReadFrame(&buf)
	assert.ErrorContains(t, err, "over the tests'")
}

func TestReadFrameTruncatedPayload(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, ws.WriteHeader(&buf, ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 10}))
	buf.WriteString("abc")
	_, err := wsframetest.ReadFrame(&buf)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
}
