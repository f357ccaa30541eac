package modaltest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	pb "github.com/modal-labs/libmodal/modal-go/proto/modal_proto"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// dial returns a raw gRPC client carrying the given credentials.
func dial(t *testing.T, s *Server, id, secret string) (pb.ModalClientClient, context.Context) {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(s.URL(), "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-modal-token-id", id, "x-modal-token-secret", secret, "x-modal-auth-token", authToken)
	return pb.NewModalClientClient(conn), ctx
}

func TestCredentialsAreChecked(t *testing.T) {
	s := New(t)
	s.AllowCredentials("ak-good", "as-good")

	c, ctx := dial(t, s, "ak-good", "as-wrong")
	_, err := c.AuthTokenGet(ctx, &pb.AuthTokenGetRequest{})
	assert.Equal(t, codes.Unauthenticated, status.Code(err))
	assert.NotContains(t, err.Error(), "as-wrong", "the double must not echo secrets")

	c, ctx = dial(t, s, "ak-good", "as-good")
	_, err = c.AuthTokenGet(ctx, &pb.AuthTokenGetRequest{})
	require.NoError(t, err)
	assert.Equal(t, 1, s.AuthTokenGets())
}

func TestLookupRecordsAndNotFound(t *testing.T) {
	s := New(t)
	c, ctx := dial(t, s, "ak", "as")
	_, err := c.FunctionGet(ctx, pb.FunctionGetRequest_builder{AppName: Gemma3App, ObjectTag: "Nope.*", EnvironmentName: "env"}.Build())
	assert.Equal(t, codes.NotFound, status.Code(err))
	resp, err := c.FunctionGet(ctx, pb.FunctionGetRequest_builder{AppName: Gemma3App, ObjectTag: Gemma3Class + ".*"}.Build())
	require.NoError(t, err)
	assert.Contains(t, resp.GetHandleMetadata().GetMethodHandleMetadata(), MethodInferChunk)
	assert.Equal(t, []Lookup{
		{App: Gemma3App, Class: "Nope", Environment: "env", TokenID: "ak"},
		{App: Gemma3App, Class: Gemma3Class, TokenID: "ak", Found: true},
	}, s.Lookups())
}

func TestBlobStoreChecksContent(t *testing.T) {
	s := New(t)
	c, ctx := dial(t, s, "ak", "as")
	data := []byte("payload")
	sum := md5.Sum(data)
	md5b64 := base64.StdEncoding.EncodeToString(sum[:])
	resp, err := c.BlobCreate(ctx, pb.BlobCreateRequest_builder{ContentMd5: md5b64, ContentLength: int64(len(data))}.Build())
	require.NoError(t, err)

	put := func(body []byte, md5 string) int {
		req, err := http.NewRequest(http.MethodPut, resp.GetUploadUrl(), bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-MD5", md5)
		r, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		require.NoError(t, r.Body.Close())
		return r.StatusCode
	}
	assert.Equal(t, http.StatusBadRequest, put([]byte("tampered"), md5b64))
	_, err = c.BlobGet(ctx, pb.BlobGetRequest_builder{BlobId: resp.GetBlobId()}.Build())
	assert.Equal(t, codes.NotFound, status.Code(err), "a blob not uploaded cannot be read")
	assert.Equal(t, http.StatusOK, put(data, md5b64))
	_, err = c.BlobGet(ctx, pb.BlobGetRequest_builder{BlobId: resp.GetBlobId()}.Build())
	require.NoError(t, err)
}

func TestCloseIsIdempotent(t *testing.T) {
	s, err := Start()
	require.NoError(t, err)
	s.Close()
	s.Close()
}
