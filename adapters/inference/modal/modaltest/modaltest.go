// Package modaltest runs a fake Modal control plane for tests, in the spirit
// of net/http/httptest: a real gRPC server on 127.0.0.1 built on modal-go's
// public proto package, plus a loopback HTTP server standing in for the blob
// store. It implements only what modal-go v0.7.3 needs to look a class up,
// make an instance, spawn method calls with CBOR arguments (inline or, above
// 2 MiB, through a blob upload), wait for their outputs and cancel them.
//
// Point the real SDK at it through its own environment variables:
//
//	srv := modaltest.New(t)
//	srv.SetEnv(t) // MODAL_SERVER_URL=srv.URL(), and no ~/.modal.toml
//	// then give the SDK any non-empty token id and secret
//
// modal-go reads the server URL only from MODAL_SERVER_URL or ~/.modal.toml,
// so tests using the double cannot run in parallel (t.Setenv forbids it).
//
// By default the two Foresight apps are deployed (foresight-gemma3-vlm /
// Gemma3VLMSession and foresight-streamingvlm / StreamingVLMSession), each with
// the methods infer_chunk and close; any credentials are accepted; infer_chunk
// answers at once with a caption reply (see DefaultReply); close returns None.
// Knobs change that; every call is recorded.
package modaltest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	pb "github.com/modal-labs/libmodal/modal-go/proto/modal_proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

// Names of the apps, classes and methods Foresight uses.
const (
	Gemma3App          = "foresight-gemma3-vlm"
	Gemma3Class        = "Gemma3VLMSession"
	StreamingVLMApp    = "foresight-streamingvlm"
	StreamingVLMClass  = "StreamingVLMSession"
	MethodInferChunk   = "infer_chunk"
	MethodClose        = "close"
	maxInlineObjectLen = 2 * 1024 * 1024 // modal-go's threshold for blobs
)

// authToken is the JWT handed out by AuthTokenGet; its payload is
// {"exp":9999999999} so the SDK caches it and never asks again.
const authToken = "x.eyJleHAiOjk5OTk5OTk5OTl9.x"

// Behavior says how the next infer_chunk call(s) behave.
type Behavior struct {
	// Delay holds the output back this long.
	Delay time.Duration
	// Hang never produces an output: the call runs until it is cancelled.
	Hang bool
	// Fail, when non-empty, makes the call raise a remote exception with this
	// text (the SDK returns a RemoteError).
	Fail string
	// SpawnDelay holds back the reply to the spawn (FunctionMap) although
	// the call already exists and is recorded: the caller does not know the
	// call's id until then.
	SpawnDelay time.Duration
}

// Call is the record of one spawned method call.
type Call struct {
	// ID is the function call id the SDK got back.
	ID string
	// App, Class and Method name what was called; Environment is the one the
	// class was looked up in.
	App, Class, Method, Environment string
	// TokenID is the token id the caller authenticated with.
	TokenID string
	// Args and Kwargs are the decoded CBOR arguments (maps keyed by string).
	Args   []any
	Kwargs map[string]any
	// ArgsViaBlob says the arguments came through a blob upload.
	ArgsViaBlob bool
	// SessionID is the session_id keyword; HasSessionID says it was sent.
	SessionID    string
	HasSessionID bool
	// Frames, StartS, EndS and Prompt are the infer_chunk positional
	// arguments (zero for other methods).
	Frames       [][]byte
	StartS, EndS float64
	Prompt       string
	// Seq is the 1-based index of this infer_chunk call among those with the
	// same app, class and session id.
	Seq int
	// Cancelled says FunctionCallCancel was called for this call.
	Cancelled bool
}

// FrameSizes returns the length of each frame.
func (c Call) FrameSizes() []int {
	sizes := make([]int, len(c.Frames))
	for i, f := range c.Frames {
		sizes[i] = len(f)
	}
	return sizes
}

// Lookup is the record of one class look-up.
type Lookup struct {
	App, Class, Environment, TokenID string
	Found                            bool
}

// ReplyFunc computes a method's return value (encoded as CBOR for the SDK);
// an error becomes a remote exception with the error's text.
type ReplyFunc func(Call) (any, error)

// DefaultReply mimics the remote classes: infer_chunk returns a dict of the
// caption "chunk N: K frames", the chunk's window and 3 tokens generated
// (an empty caption and 0 tokens for no frames), under the ack's names, and
// close returns None.
func DefaultReply(c Call) (any, error) {
	if c.Method != MethodInferChunk {
		return nil, nil
	}
	caption, tokens := fmt.Sprintf("chunk %d: %d frames", c.Seq, len(c.Frames)), 3
	if len(c.Frames) == 0 {
		caption, tokens = "", 0
	}
	return map[string]any{
		wire.AckCaption:         caption,
		wire.AckChunkStartS:     c.StartS,
		wire.AckChunkEndS:       c.EndS,
		wire.AckTokensGenerated: tokens,
	}, nil
}

type appClass struct{ app, class string }

type callState struct {
	Call
	cancelled chan struct{}
	readyAt   time.Time
	hang      bool
	exception string
	result    []byte
}

type blob struct {
	md5  string
	size int64
	data []byte
	done bool
}

// Server is a running fake Modal control plane. Its methods are safe for
// concurrent use.
type Server struct {
	grpcSrv *grpc.Server
	lis     net.Listener
	httpSrv *httptest.Server
	url     string

	mu         sync.Mutex
	creds      map[string]string
	deployed   map[appClass]bool
	functions  map[string]appClass // function id → class
	envOf      map[string]string   // function id → environment looked up in
	calls      []*callState
	callByID   map[string]*callState
	blobs      map[string]*blob
	lookups    []Lookup
	authGets   int
	seq        int
	chunkSeq   map[string]int
	behavior   Behavior
	queue      []Behavior
	reply      ReplyFunc
	changed    chan struct{}
	done       chan struct{}
	closeOnce  sync.Once
	uploadFail bool
	forget     bool
}

// New starts a Server and closes it when tb's test ends.
func New(tb testing.TB) *Server {
	tb.Helper()
	s, err := Start()
	if err != nil {
		tb.Fatalf("modaltest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a Server on loopback. Call Close when done.
func Start() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{
		lis:       lis,
		url:       "http://" + lis.Addr().String(),
		creds:     map[string]string{},
		deployed:  map[appClass]bool{},
		functions: map[string]appClass{},
		envOf:     map[string]string{},
		callByID:  map[string]*callState{},
		blobs:     map[string]*blob{},
		chunkSeq:  map[string]int{},
		reply:     DefaultReply,
		changed:   make(chan struct{}),
		done:      make(chan struct{}),
	}
	s.deployed[appClass{Gemma3App, Gemma3Class}] = true
	s.deployed[appClass{StreamingVLMApp, StreamingVLMClass}] = true
	s.httpSrv = httptest.NewServer(http.HandlerFunc(s.serveBlob))
	s.grpcSrv = grpc.NewServer(
		grpc.MaxRecvMsgSize(100<<20),
		grpc.MaxSendMsgSize(100<<20),
		// modal-go pings every 30 s even when idle; the default policy would
		// answer with GOAWAY "too_many_pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.UnaryInterceptor(s.authenticate),
	)
	pb.RegisterModalClientServer(s.grpcSrv, &service{s: s})
	go func() { _ = s.grpcSrv.Serve(lis) }()
	return s, nil
}

// URL is the control plane's address, for MODAL_SERVER_URL
// ("http://127.0.0.1:port"; modal-go speaks plain gRPC to http:// URLs).
func (s *Server) URL() string { return s.url }

// SetEnv points modal-go at this server for the rest of tb's test: it sets
// MODAL_SERVER_URL, and MODAL_CONFIG_PATH to a missing file so a developer's
// ~/.modal.toml cannot leak in. It does not set credentials.
func (s *Server) SetEnv(tb testing.TB) {
	tb.Helper()
	tb.Setenv("MODAL_SERVER_URL", s.URL())
	tb.Setenv("MODAL_CONFIG_PATH", tb.TempDir()+"/no-modal.toml")
	tb.Setenv("MODAL_PROFILE", "")
}

// Close stops the servers, failing calls still waiting. It is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.grpcSrv.Stop()
		s.httpSrv.Close()
	})
}

// AllowCredentials restricts accepted credentials to the pairs added so far
// (initially any non-empty pair is accepted). Others get Unauthenticated.
func (s *Server) AllowCredentials(tokenID, tokenSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[tokenID] = tokenSecret
}

// Deploy makes app/class known, with the methods infer_chunk and close.
func (s *Server) Deploy(app, class string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deployed[appClass{app, class}] = true
}

// Undeploy forgets app/class: look-ups get NotFound.
func (s *Server) Undeploy(app, class string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deployed, appClass{app, class})
}

// SetBehavior sets how every infer_chunk call behaves once the queued
// behaviours are used up.
func (s *Server) SetBehavior(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behavior = b
}

// SetForgetFrames makes the server drop each call's arguments (frames
// included) once its reply is made, so a long load run does not keep every
// frame it was sent: Calls then report Args and Frames as nil.
func (s *Server) SetForgetFrames(forget bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forget = forget
}

// QueueBehavior makes the next infer_chunk calls behave as given, one each.
func (s *Server) QueueBehavior(b ...Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, b...)
}

// SetReply replaces DefaultReply for calls that succeed. nil restores it.
func (s *Server) SetReply(f ReplyFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		f = DefaultReply
	}
	s.reply = f
}

// FailBlobUploads makes the blob store refuse uploads (HTTP 500).
func (s *Server) FailBlobUploads(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadFail = fail
}

// Calls returns a copy of every call made so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	for i, c := range s.calls {
		out[i] = c.Call
	}
	return out
}

// CallsTo returns the calls of one method, in order.
func (s *Server) CallsTo(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Cancellations returns the ids of the calls cancelled so far.
func (s *Server) Cancellations() []string {
	var out []string
	for _, c := range s.Calls() {
		if c.Cancelled {
			out = append(out, c.ID)
		}
	}
	return out
}

// Lookups returns every class look-up so far.
func (s *Server) Lookups() []Lookup {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Lookup(nil), s.lookups...)
}

// AuthTokenGets counts successful AuthTokenGet calls. modal-go makes exactly
// one per client (the token handed out never expires), so this counts the
// clients that reached the server.
func (s *Server) AuthTokenGets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authGets
}

// WaitFor blocks until cond returns true (checked after every recorded
// change) or ctx is done.
func (s *Server) WaitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// notifyLocked wakes WaitFor; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) nextIDLocked(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%d", prefix, s.seq)
}

type tokenIDKey struct{}

// authenticate checks the credentials modal-go sends on every call and the
// auth token on every call but AuthTokenGet.
func (s *Server) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	id, secret := first("x-modal-token-id"), first("x-modal-token-secret")
	s.mu.Lock()
	ok := id != "" && secret != ""
	if ok && len(s.creds) > 0 {
		want, known := s.creds[id]
		ok = known && want == secret
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "invalid token id or token secret")
	}
	if info.FullMethod != pb.ModalClient_AuthTokenGet_FullMethodName && first("x-modal-auth-token") != authToken {
		return nil, status.Error(codes.Unauthenticated, "missing or invalid auth token")
	}
	return handler(context.WithValue(ctx, tokenIDKey{}, id), req)
}

// serveBlob is the blob store: PUT stores an announced blob (checking its
// Content-MD5), GET returns it.
func (s *Server) serveBlob(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/blob/")
	if !ok {
		http.NotFound(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		data, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		sum := md5.Sum(data)
		s.mu.Lock()
		defer s.mu.Unlock()
		b := s.blobs[id]
		switch {
		case s.uploadFail:
			http.Error(w, "upload refused", http.StatusInternalServerError)
		case b == nil:
			http.NotFound(w, r)
		case r.Header.Get("Content-MD5") != b.md5 || base64.StdEncoding.EncodeToString(sum[:]) != b.md5 || int64(len(data)) != b.size:
			http.Error(w, "content does not match the announced blob", http.StatusBadRequest)
		default:
			b.data, b.done = data, true
			w.WriteHeader(http.StatusOK)
		}
	case http.MethodGet:
		s.mu.Lock()
		b := s.blobs[id]
		s.mu.Unlock()
		if b == nil || !b.done {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b.data)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// service implements the gRPC methods modal-go uses.
type service struct {
	pb.UnimplementedModalClientServer
	s *Server
}

func (v *service) AuthTokenGet(ctx context.Context, _ *pb.AuthTokenGetRequest) (*pb.AuthTokenGetResponse, error) {
	v.s.mu.Lock()
	v.s.authGets++
	v.s.notifyLocked()
	v.s.mu.Unlock()
	return pb.AuthTokenGetResponse_builder{Token: authToken}.Build(), nil
}

func methodMetadata(class, method, functionID string) *pb.FunctionHandleMetadata {
	return pb.FunctionHandleMetadata_builder{
		FunctionName:           class + "." + method,
		FunctionType:           pb.Function_FUNCTION_TYPE_FUNCTION,
		IsMethod:               true,
		UseFunctionId:          functionID,
		UseMethodName:          method,
		SupportedInputFormats:  []pb.DataFormat{pb.DataFormat_DATA_FORMAT_PICKLE, pb.DataFormat_DATA_FORMAT_CBOR},
		SupportedOutputFormats: []pb.DataFormat{pb.DataFormat_DATA_FORMAT_PICKLE, pb.DataFormat_DATA_FORMAT_CBOR},
	}.Build()
}

// FunctionGet resolves "<Class>.*" (a class's service function) in an app.
func (v *service) FunctionGet(ctx context.Context, req *pb.FunctionGetRequest) (*pb.FunctionGetResponse, error) {
	s := v.s
	class, isClass := strings.CutSuffix(req.GetObjectTag(), ".*")
	s.mu.Lock()
	defer s.mu.Unlock()
	key := appClass{req.GetAppName(), class}
	found := isClass && s.deployed[key]
	s.lookups = append(s.lookups, Lookup{
		App: key.app, Class: class, Environment: req.GetEnvironmentName(),
		TokenID: tokenID(ctx), Found: found,
	})
	s.notifyLocked()
	if !found {
		return nil, status.Errorf(codes.NotFound, "object %q not found in app %q", req.GetObjectTag(), req.GetAppName())
	}
	id := s.nextIDLocked("fu")
	s.functions[id] = key
	s.envOf[id] = req.GetEnvironmentName()
	return pb.FunctionGetResponse_builder{
		FunctionId: id,
		HandleMetadata: pb.FunctionHandleMetadata_builder{
			FunctionName: class + ".*",
			FunctionType: pb.Function_FUNCTION_TYPE_FUNCTION,
			MethodHandleMetadata: map[string]*pb.FunctionHandleMetadata{
				MethodInferChunk: methodMetadata(class, MethodInferChunk, id),
				MethodClose:      methodMetadata(class, MethodClose, id),
			},
			SupportedInputFormats:  []pb.DataFormat{pb.DataFormat_DATA_FORMAT_PICKLE, pb.DataFormat_DATA_FORMAT_CBOR},
			SupportedOutputFormats: []pb.DataFormat{pb.DataFormat_DATA_FORMAT_PICKLE, pb.DataFormat_DATA_FORMAT_CBOR},
		}.Build(),
	}.Build(), nil
}

// FunctionBindParams binds instance parameters. Foresight's classes take none,
// so modal-go does not call it; it is here for completeness.
func (v *service) FunctionBindParams(ctx context.Context, req *pb.FunctionBindParamsRequest) (*pb.FunctionBindParamsResponse, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.functions[req.GetFunctionId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "function %q not found", req.GetFunctionId())
	}
	id := s.nextIDLocked("fu")
	s.functions[id] = key
	s.envOf[id] = s.envOf[req.GetFunctionId()]
	return pb.FunctionBindParamsResponse_builder{BoundFunctionId: id}.Build(), nil
}

func (v *service) BlobCreate(ctx context.Context, req *pb.BlobCreateRequest) (*pb.BlobCreateResponse, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextIDLocked("bl")
	s.blobs[id] = &blob{md5: req.GetContentMd5(), size: req.GetContentLength()}
	url := s.httpSrv.URL + "/blob/" + id
	return pb.BlobCreateResponse_builder{BlobId: id, UploadUrl: &url}.Build(), nil
}

func (v *service) BlobGet(ctx context.Context, req *pb.BlobGetRequest) (*pb.BlobGetResponse, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.blobs[req.GetBlobId()]; b == nil || !b.done {
		return nil, status.Errorf(codes.NotFound, "blob %q not found", req.GetBlobId())
	}
	return pb.BlobGetResponse_builder{DownloadUrl: s.httpSrv.URL + "/blob/" + req.GetBlobId()}.Build(), nil
}

// FunctionMap starts one call (modal-go pipelines its single input here).
func (v *service) FunctionMap(ctx context.Context, req *pb.FunctionMapRequest) (*pb.FunctionMapResponse, error) {
	s := v.s
	items := req.GetPipelinedInputs()
	if len(items) != 1 || items[0].GetInput() == nil {
		return nil, status.Error(codes.InvalidArgument, "expected exactly one pipelined input")
	}
	in := items[0].GetInput()
	if in.GetDataFormat() != pb.DataFormat_DATA_FORMAT_CBOR {
		return nil, status.Errorf(codes.InvalidArgument, "unsupported data format %v", in.GetDataFormat())
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	key, ok := s.functions[req.GetFunctionId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "function %q not found", req.GetFunctionId())
	}
	method := in.GetMethodName()
	if method != MethodInferChunk && method != MethodClose {
		return nil, status.Errorf(codes.InvalidArgument, "class %s has no method %q", key.class, method)
	}
	raw, viaBlob := in.GetArgs(), false
	if in.WhichArgsOneof() == pb.FunctionInput_ArgsBlobId_case {
		b := s.blobs[in.GetArgsBlobId()]
		if b == nil || !b.done {
			return nil, status.Errorf(codes.InvalidArgument, "args blob %q was not uploaded", in.GetArgsBlobId())
		}
		raw, viaBlob = b.data, true
	}
	args, kwargs, err := decodeArgs(raw)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "decode arguments: %v", err)
	}

	cs := &callState{
		Call: Call{
			ID: s.nextIDLocked("fc"), App: key.app, Class: key.class, Method: method,
			Environment: s.envOf[req.GetFunctionId()], TokenID: tokenID(ctx),
			Args: args, Kwargs: kwargs, ArgsViaBlob: viaBlob,
		},
		cancelled: make(chan struct{}),
		readyAt:   time.Now(),
	}
	if sid, ok := kwargs["session_id"]; ok {
		cs.HasSessionID = true
		cs.SessionID, _ = sid.(string)
	}
	var b Behavior
	if method == MethodInferChunk {
		fillChunk(&cs.Call)
		seqKey := key.app + "\x00" + key.class + "\x00" + cs.SessionID
		s.chunkSeq[seqKey]++
		cs.Seq = s.chunkSeq[seqKey]
		b = s.behavior
		if len(s.queue) > 0 {
			b, s.queue = s.queue[0], s.queue[1:]
		}
	}
	cs.readyAt = cs.readyAt.Add(b.Delay)
	cs.hang = b.Hang
	switch {
	case b.Hang:
	case b.Fail != "":
		cs.exception = b.Fail
	default:
		cs.result, cs.exception = encodeReply(s.reply, cs.Call)
	}
	if s.forget {
		cs.Args, cs.Frames = nil, nil
	}
	s.calls = append(s.calls, cs)
	s.callByID[cs.ID] = cs
	s.notifyLocked()

	if b.SpawnDelay > 0 {
		s.mu.Unlock()
		t := time.NewTimer(b.SpawnDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-s.done:
		}
		t.Stop()
		s.mu.Lock()
	}
	return pb.FunctionMapResponse_builder{
		FunctionCallId:  cs.ID,
		FunctionCallJwt: "jwt-" + cs.ID,
		PipelinedInputs: []*pb.FunctionPutInputsResponseItem{
			pb.FunctionPutInputsResponseItem_builder{Idx: 0, InputId: "in-" + cs.ID, InputJwt: "ijwt-" + cs.ID}.Build(),
		},
	}.Build(), nil
}

// encodeReply runs the reply function (a panic or error becomes an exception).
func encodeReply(f ReplyFunc, c Call) (data []byte, exception string) {
	defer func() {
		if r := recover(); r != nil {
			data, exception = nil, fmt.Sprintf("reply panicked: %v", r)
		}
	}()
	v, err := f(c)
	if err != nil {
		return nil, err.Error()
	}
	data, err = cbor.Marshal(v)
	if err != nil {
		return nil, fmt.Sprintf("encode reply: %v", err)
	}
	return data, ""
}

// FunctionGetOutputs waits up to the request's timeout for the call's output.
func (v *service) FunctionGetOutputs(ctx context.Context, req *pb.FunctionGetOutputsRequest) (*pb.FunctionGetOutputsResponse, error) {
	s := v.s
	s.mu.Lock()
	cs := s.callByID[req.GetFunctionCallId()]
	s.mu.Unlock()
	if cs == nil {
		return nil, status.Errorf(codes.NotFound, "function call %q not found", req.GetFunctionCallId())
	}
	wait := min(time.Duration(float64(req.GetTimeout())*float64(time.Second)), time.Minute)
	if wait < 0 {
		wait = 0
	}
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	var ready <-chan time.Time
	if !cs.hang {
		t := time.NewTimer(time.Until(cs.readyAt))
		defer t.Stop()
		ready = t.C
	}

	// An output already due wins over an expired poll timeout.
	var result *pb.GenericResult
	select {
	case <-cs.cancelled:
		result = terminated()
	default:
		select {
		case <-cs.cancelled:
			result = terminated()
		case <-ready:
			select {
			case <-cs.cancelled:
				result = terminated()
			default:
				r, err := s.resultOf(cs)
				if err != nil {
					return nil, err
				}
				result = r
			}
		case <-timeout.C:
			return pb.FunctionGetOutputsResponse_builder{LastEntryId: "0-0"}.Build(), nil
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-s.done:
			return nil, status.Error(codes.Unavailable, "server closing")
		}
	}
	return pb.FunctionGetOutputsResponse_builder{
		Idxs:        []int32{0},
		LastEntryId: "1-0",
		Outputs: []*pb.FunctionGetOutputsItem{pb.FunctionGetOutputsItem_builder{
			Result:     result,
			Idx:        0,
			InputId:    "in-" + cs.ID,
			DataFormat: pb.DataFormat_DATA_FORMAT_CBOR,
		}.Build()},
	}.Build(), nil
}

func terminated() *pb.GenericResult {
	return pb.GenericResult_builder{
		Status:    pb.GenericResult_GENERIC_STATUS_TERMINATED,
		Exception: "function call was cancelled",
	}.Build()
}

// resultOf builds a finished call's result, moving outputs over 2 MiB to a
// blob as Modal does.
func (s *Server) resultOf(cs *callState) (*pb.GenericResult, error) {
	if cs.exception != "" {
		return pb.GenericResult_builder{
			Status:    pb.GenericResult_GENERIC_STATUS_FAILURE,
			Exception: cs.exception,
			Traceback: "Traceback (most recent call last):\n  (modaltest)\n" + cs.exception,
		}.Build(), nil
	}
	if len(cs.result) <= maxInlineObjectLen {
		return pb.GenericResult_builder{Status: pb.GenericResult_GENERIC_STATUS_SUCCESS, Data: cs.result}.Build(), nil
	}
	s.mu.Lock()
	id := s.nextIDLocked("bl")
	s.blobs[id] = &blob{data: cs.result, size: int64(len(cs.result)), done: true}
	s.mu.Unlock()
	return pb.GenericResult_builder{Status: pb.GenericResult_GENERIC_STATUS_SUCCESS, DataBlobId: &id}.Build(), nil
}

func (v *service) FunctionCallCancel(ctx context.Context, req *pb.FunctionCallCancelRequest) (*emptypb.Empty, error) {
	s := v.s
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.callByID[req.GetFunctionCallId()]
	if cs == nil {
		return nil, status.Errorf(codes.NotFound, "function call %q not found", req.GetFunctionCallId())
	}
	if !cs.Cancelled {
		cs.Cancelled = true
		close(cs.cancelled)
		s.notifyLocked()
	}
	return &emptypb.Empty{}, nil
}

func tokenID(ctx context.Context) string {
	id, _ := ctx.Value(tokenIDKey{}).(string)
	return id
}

// decodeArgs decodes modal-go's CBOR [args, kwargs] pair.
func decodeArgs(raw []byte) ([]any, map[string]any, error) {
	var pair []any
	if err := cbor.NewDecoder(bytes.NewReader(raw)).Decode(&pair); err != nil {
		return nil, nil, err
	}
	if len(pair) != 2 {
		return nil, nil, errors.New("expected [args, kwargs]")
	}
	args, ok := pair[0].([]any)
	if !ok {
		return nil, nil, fmt.Errorf("args is %T, want an array", pair[0])
	}
	kwargs := map[string]any{}
	switch m := pair[1].(type) {
	case map[any]any:
		for k, v := range m {
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("kwarg key %v is not a string", k)
			}
			kwargs[ks] = v
		}
	case map[string]any:
		kwargs = m
	default:
		return nil, nil, fmt.Errorf("kwargs is %T, want a map", pair[1])
	}
	return args, kwargs, nil
}

// fillChunk reads infer_chunk's positional arguments
// (frames: list[bytes], start_ts_s: float, end_ts_s: float, prompt: str);
// values of the wrong type are left zero (tests see them in Args).
func fillChunk(c *Call) {
	if len(c.Args) > 0 {
		if frames, ok := c.Args[0].([]any); ok {
			for _, f := range frames {
				if b, ok := f.([]byte); ok {
					c.Frames = append(c.Frames, b)
				}
			}
		}
	}
	if len(c.Args) > 1 {
		c.StartS, _ = c.Args[1].(float64)
	}
	if len(c.Args) > 2 {
		c.EndS, _ = c.Args[2].(float64)
	}
	if len(c.Args) > 3 {
		c.Prompt, _ = c.Args[3].(string)
	}
}
