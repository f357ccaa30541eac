package modalheader_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSessionOptions(t *testing.T) {
	h := http.Header{}
	h.Set("x-modal-token-id", " ak ")
	h.Set("X-Modal-Token-Secret", "as")
	h.Set("X-Modal-App-Name", "   ")
	h.Set("X-Modal-Class-Name", "Cls")
	h.Set("X-Other", "ignored")
	assert.Equal(t, map[string]string{"token-id": "ak", "token-secret": "as", "class-name": "Cls"}, modalheader.SessionOptions(h))
	assert.Nil(t, modalheader.SessionOptions(http.Header{"X-Other": {"x"}}), "none set: nil")
}
