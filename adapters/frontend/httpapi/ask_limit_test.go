package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/ports"
)

// TestAskIsLimitedPerCredential: each credential has its own share of
// questions; past it 429 with Retry-After, and the model is not asked.
func TestAskIsLimitedPerCredential(t *testing.T) {
	var asked atomic.Int32
	now := time.Unix(1_700_000_000, 0)
	router := httpapi.NewRouter(httpapi.Handlers{
		Ask:      http.HandlerFunc(func(http.ResponseWriter, *http.Request) { asked.Add(1) }),
		AskLimit: access.NewLimiter(2, func() time.Time { return now }),
	})
	ask := func(tokenID string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, httpapi.AskPath, strings.NewReader(`{}`))
		r = r.WithContext(access.WithPrincipal(r.Context(), access.Principal{TokenID: tokenID, Role: ports.RoleDevice, Devices: []string{"kit"}}))
		w := httptest.NewRecorder()
		router.ServeHTTP(w, r)
		return w
	}
	for range 2 {
		assert.Equal(t, http.StatusOK, ask("tok_a").Code)
	}
	refused := ask("tok_a")
	assert.Equal(t, http.StatusTooManyRequests, refused.Code)
	assert.NotEmpty(t, refused.Header().Get("Retry-After"))
	assert.Equal(t, http.StatusOK, ask("tok_b").Code, "another credential has its own share")
	assert.Equal(t, int32(3), asked.Load(), "a refused question never reaches the model")
}
