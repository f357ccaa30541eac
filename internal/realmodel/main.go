// Command realmodel writes a tiny Gemma 3 vision model with random weights,
// as a GGUF file that Ollama's own engine loads and serves, so that the
// tests can talk to a real model server on loopback without any download.
//
// The weights are random (a fixed seed, so the file is the same byte for
// byte on every run): the captions the model writes are noise. What is real
// is everything around them: Ollama's HTTP API, its image pipeline (JPEG
// decode, resize, a SigLIP vision tower, the multimodal projector), its
// tokenizer, sampler, stop rules, timing and errors.
//
//	go run . -out /path/to/gemma3-tiny-vision.gguf
//
// The file is written with Ollama's own GGUF writer (fs/ggml.WriteGGUF) at
// the version go.mod pins, and its tensor names and metadata keys are the
// ones model/models/gemma3 in that version reads. Constraints found in that
// loader, which shape this file:
//
//   - Token ids 255999 (<start_of_image>) and 256000 (<end_of_image>) are
//     hard-coded in gemma3.(*Model).PostTokenize, as is 108 ("\n\n"); so the
//     vocabulary needs at least 256,001 entries. They dominate the file:
//     two [embedding_length x vocab] matrices.
//   - The loader reads gemma3.mm_tokens_per_image (the converter writes
//     gemma3.mm.tokens_per_image, which the loader ignores). Without it the
//     projector assumes 256 tokens per image and its pooling kernel comes
//     out 0 for our 4x4 patch grid. 56 px images in 14 px patches give a
//     4x4 grid: 16 tokens per image, pooled with a kernel of 1.
//   - output.weight must be a tensor of its own. The loader falls back to
//     token_embd (`gguf:"output,alt:token_embd"`), but with tied random
//     embeddings the logits of the last input token dominate and the model
//     only ever repeats it.
//   - RMSNorm weights are used as they are (the converter already folded
//     Gemma's 1+w into them), so they are set near 1, not near 0.
//   - The tokenizer is SentencePiece ("llama"): byte tokens <0x00>..<0xFF>
//     give every prompt a tokenization; the rest of the vocabulary are
//     pronounceable filler words, so the noise the model writes reads as
//     words, not as "<unused123>".
//   - tokenizer.chat_template is the Hugging Face Gemma 3 template, which
//     Ollama's create recognises (template.Named) as gemma3-instruct: a
//     Modelfile of just `FROM <this file>` gets the Gemma 3 chat template and
//     its <end_of_turn> stop, as a real Gemma 3 GGUF would. The program
//     checks that recognition before it writes the file.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ollama/ollama/fs/ggml"
	"github.com/ollama/ollama/template"
	"github.com/x448/float16"
)

// Sizes. The text model is two Gemma 3 layers 32 wide; the vision tower two
// SigLIP layers 32 wide. About 17 M parameters, almost all of them in the
// two vocabulary matrices.
const (
	vocabSize = 256001 // the least that holds token 256000, see above

	textLayers   = 2
	textHidden   = 32
	textHeads    = 2
	textKVHeads  = 1
	textHeadDim  = 16
	textFFN      = 64
	contextLen   = 8192
	slidingWin   = 512
	rmsEpsilon   = 1e-6
	visionLayers = 2
	visionHidden = 32
	visionHeads  = 2
	visionFFN    = 64
	imageSize    = 56 // px; Ollama resizes every image to this square
	patchSize    = 14 // px; so a 4x4 grid of patches
	channels     = 3
	// tokensPerImage is the number of text positions one image takes:
	// the patch grid pooled to sqrt(tokensPerImage) per side.
	tokensPerImage = (imageSize / patchSize) * (imageSize / patchSize)
	seed           = 20260221
)

// Token ids the Gemma 3 loader and tokenizer rely on.
const (
	tokPad         = 0
	tokEOS         = 1
	tokBOS         = 2
	tokUnk         = 3
	tokStartOfTurn = 105
	tokEndOfTurn   = 106 // the loader's default eot_token_id
	tokNewline     = 107
	tokNewline2    = 108 // hard-coded in PostTokenize
	tokFirstByte   = 109 // <0x00>..<0xFF>
	tokStartImage  = 255999
	tokEndImage    = 256000
)

// SentencePiece token types (tokenizer.TOKEN_TYPE_*).
const (
	typeNormal  = 1
	typeUnknown = 2
	typeControl = 3
	typeByte    = 6
)

// chatTemplate is the Hugging Face Gemma 3 chat template, as Ollama's
// template/index.json holds it for gemma3-instruct.
const chatTemplate = "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"

func main() {
	out := flag.String("out", "gemma3-tiny-vision.gguf", "where to write the GGUF file")
	flag.Parse()
	start := time.Now()
	n, params, err := write(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "realmodel:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "realmodel: wrote %s: %d parameters, %.1f MB, in %s\n",
		*out, params, float64(n)/1e6, time.Since(start).Round(time.Millisecond))
}

// write writes the model to path (through a temporary file renamed into
// place, so a reader never sees half a model) and returns its size in
// bytes and its parameter count.
func write(path string) (int64, uint64, error) {
	if t, err := template.Named(chatTemplate); err != nil || t.Name != "gemma3-instruct" {
		return 0, 0, fmt.Errorf("this Ollama no longer recognises the Gemma 3 chat template (%v, %v)", t, err)
	}

	kv, tensors, params := build()
	kv["general.parameter_count"] = params

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, 0, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".realmodel-*.gguf")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := ggml.WriteGGUF(f, kv, tensors); err != nil {
		f.Close()
		return 0, 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, 0, err
	}
	if err := f.Close(); err != nil {
		return 0, 0, err
	}
	return info.Size(), params, os.Rename(f.Name(), path)
}

// build returns the metadata and tensors of the model, and its parameter
// count. Shapes are in GGUF (ggml) order: the innermost dimension first, so
// a linear layer from n inputs to m outputs is {n, m}.
func build() (ggml.KV, []*ggml.Tensor, uint64) {
	tokens, scores, types := vocabulary()
	kv := ggml.KV{
		"general.architecture": "gemma3",
		"general.name":         "foresight-gemma3-tiny-vision-random",
		"general.description":  "random weights (seed " + fmt.Sprint(seed) + "): for tests; its output is noise",
		"general.file_type":    uint32(1), // mostly F16
		"general.alignment":    uint32(32),

		"gemma3.context_length":                   uint32(contextLen),
		"gemma3.block_count":                      uint32(textLayers),
		"gemma3.embedding_length":                 uint32(textHidden),
		"gemma3.feed_forward_length":              uint32(textFFN),
		"gemma3.attention.head_count":             uint32(textHeads),
		"gemma3.attention.head_count_kv":          uint32(textKVHeads),
		"gemma3.attention.key_length":             uint32(textHeadDim),
		"gemma3.attention.value_length":           uint32(textHeadDim),
		"gemma3.attention.layer_norm_rms_epsilon": float32(rmsEpsilon),
		"gemma3.attention.sliding_window":         uint32(slidingWin),
		"gemma3.rope.freq_base":                   float32(1_000_000),
		"gemma3.rope.local.freq_base":             float32(10_000),

		"gemma3.vision.block_count":                  uint32(visionLayers),
		"gemma3.vision.embedding_length":             uint32(visionHidden),
		"gemma3.vision.feed_forward_length":          uint32(visionFFN),
		"gemma3.vision.attention.head_count":         uint32(visionHeads),
		"gemma3.vision.attention.layer_norm_epsilon": float32(1e-6),
		"gemma3.vision.image_size":                   uint32(imageSize),
		"gemma3.vision.patch_size":                   uint32(patchSize),
		"gemma3.vision.num_channels":                 uint32(channels),
		"gemma3.mm_tokens_per_image":                 uint32(tokensPerImage),

		"tokenizer.ggml.model":            "llama",
		"tokenizer.ggml.pre":              "default",
		"tokenizer.ggml.tokens":           tokens,
		"tokenizer.ggml.scores":           scores,
		"tokenizer.ggml.token_type":       types,
		"tokenizer.ggml.bos_token_id":     uint32(tokBOS),
		"tokenizer.ggml.eos_token_id":     uint32(tokEOS),
		"tokenizer.ggml.eot_token_id":     uint32(tokEndOfTurn),
		"tokenizer.ggml.padding_token_id": uint32(tokPad),
		"tokenizer.ggml.unknown_token_id": uint32(tokUnk),
		"tokenizer.ggml.add_bos_token":    true,
		"tokenizer.ggml.add_eos_token":    false,
		"tokenizer.ggml.add_space_prefix": false,
		"tokenizer.chat_template":         chatTemplate,
		"tokenizer.ggml.eos_token_ids":    []int32{tokEOS, tokEndOfTurn},
	}

	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var ts []*ggml.Tensor
	var params uint64
	// random: normal weights with the given standard deviation.
	random := func(name string, kind ggml.TensorType, std float64, shape ...uint64) {
		n := elements(shape)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64() * std)
		}
		ts = append(ts, tensor(name, kind, v, shape))
		params += n
	}
	// around: constant c plus a little noise (norm scales, biases).
	around := func(name string, c float64, shape ...uint64) {
		n := elements(shape)
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(c + r.NormFloat64()*0.02)
		}
		ts = append(ts, tensor(name, ggml.TensorTypeF32, v, shape))
		params += n
	}
	linear := func(name string, in, out uint64, bias bool) {
		random(name+".weight", ggml.TensorTypeF32, 1/math.Sqrt(float64(in)), in, out)
		if bias {
			around(name+".bias", 0, out)
		}
	}

	// Text model.
	random("token_embd.weight", ggml.TensorTypeF16, 0.5, textHidden, vocabSize)
	random("output.weight", ggml.TensorTypeF16, 1/math.Sqrt(textHidden), textHidden, vocabSize)
	around("output_norm.weight", 1, textHidden)
	for i := range textLayers {
		p := fmt.Sprintf("blk.%d.", i)
		around(p+"attn_norm.weight", 1, textHidden)
		linear(p+"attn_q", textHidden, textHeads*textHeadDim, false)
		around(p+"attn_q_norm.weight", 1, textHeadDim)
		linear(p+"attn_k", textHidden, textKVHeads*textHeadDim, false)
		around(p+"attn_k_norm.weight", 1, textHeadDim)
		linear(p+"attn_v", textHidden, textKVHeads*textHeadDim, false)
		linear(p+"attn_output", textHeads*textHeadDim, textHidden, false)
		around(p+"post_attention_norm.weight", 1, textHidden)
		around(p+"ffn_norm.weight", 1, textHidden)
		linear(p+"ffn_gate", textHidden, textFFN, false)
		linear(p+"ffn_up", textHidden, textFFN, false)
		linear(p+"ffn_down", textFFN, textHidden, false)
		around(p+"post_ffw_norm.weight", 1, textHidden)
	}

	// Vision tower (SigLIP). The patch embedding is a convolution kernel
	// {width, height, in channels, out channels}.
	random("v.patch_embedding.weight", ggml.TensorTypeF32, 1/math.Sqrt(patchSize*patchSize*channels),
		patchSize, patchSize, channels, visionHidden)
	around("v.patch_embedding.bias", 0, visionHidden)
	random("v.position_embedding.weight", ggml.TensorTypeF32, 0.02, visionHidden, tokensPerImage)
	for i := range visionLayers {
		p := fmt.Sprintf("v.blk.%d.", i)
		around(p+"layer_norm1.weight", 1, visionHidden)
		around(p+"layer_norm1.bias", 0, visionHidden)
		linear(p+"attn_q", visionHidden, visionHidden, true)
		linear(p+"attn_k", visionHidden, visionHidden, true)
		linear(p+"attn_v", visionHidden, visionHidden, true)
		linear(p+"attn_output", visionHidden, visionHidden, true)
		around(p+"layer_norm2.weight", 1, visionHidden)
		around(p+"layer_norm2.bias", 0, visionHidden)
		linear(p+"mlp.fc1", visionHidden, visionFFN, true)
		linear(p+"mlp.fc2", visionFFN, visionHidden, true)
	}
	around("v.post_layernorm.weight", 1, visionHidden)
	around("v.post_layernorm.bias", 0, visionHidden)

	// Projector from vision to text: gemma3.MultiModalProjector transposes
	// this weight before use, so it is stored {text, vision}.
	around("mm.mm_soft_emb_norm.weight", 1, visionHidden)
	random("mm.mm_input_projection.weight", ggml.TensorTypeF32, 1/math.Sqrt(visionHidden), textHidden, visionHidden)

	return kv, ts, params
}

// vocabulary returns a SentencePiece vocabulary of vocabSize pieces with
// Gemma 3's special tokens at Gemma 3's ids.
func vocabulary() (tokens []string, scores []float32, types []int32) {
	tokens = make([]string, vocabSize)
	scores = make([]float32, vocabSize)
	types = make([]int32, vocabSize)
	set := func(id int, s string, t int32) { tokens[id], types[id] = s, t }

	set(tokPad, "<pad>", typeControl)
	set(tokEOS, "<eos>", typeControl)
	set(tokBOS, "<bos>", typeControl)
	set(tokUnk, "<unk>", typeUnknown)
	set(tokStartOfTurn, "<start_of_turn>", typeControl)
	set(tokEndOfTurn, "<end_of_turn>", typeControl)
	set(tokNewline, "\n", typeNormal)
	set(tokNewline2, "\n\n", typeNormal)
	for b := range 256 {
		set(tokFirstByte+b, fmt.Sprintf("<0x%02X>", b), typeByte)
	}
	set(tokStartImage, "<start_of_image>", typeControl)
	set(tokEndImage, "<end_of_image>", typeControl)

	// Everything else, in order: "▁" (SentencePiece's space), the printable
	// ASCII characters, then filler words "▁" + three syllables.
	pieces := []string{"▁"}
	for c := byte('!'); c <= '~'; c++ {
		pieces = append(pieces, string(c))
	}
	word := 0
	for id := range tokens {
		if tokens[id] != "" {
			continue
		}
		var s string
		if len(pieces) > 0 {
			s, pieces = pieces[0], pieces[1:]
		} else {
			s = "▁" + syllables(word)
			word++
		}
		set(id, s, typeNormal)
		scores[id] = -float32(id)
	}
	return tokens, scores, types
}

// syllables spells n as three consonant-vowel syllables (75^3 = 421,875
// distinct words, more than the vocabulary needs), so filler is unique.
func syllables(n int) string {
	const consonants, vowels = "bdfghklmnprstvwz", "aeiou"
	const k = 15 * 5 // uses the first 15 consonants
	var b strings.Builder
	for _, d := range []int{n / (k * k) % k, n / k % k, n % k} {
		b.WriteByte(consonants[d/5])
		b.WriteByte(vowels[d%5])
	}
	return b.String()
}

func elements(shape []uint64) uint64 {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// tensor encodes v as kind (F32 or F16, little-endian) and returns the
// GGUF tensor that writes it.
func tensor(name string, kind ggml.TensorType, v []float32, shape []uint64) *ggml.Tensor {
	var data []byte
	switch kind {
	case ggml.TensorTypeF32:
		data = make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(x))
		}
	case ggml.TensorTypeF16:
		data = make([]byte, 2*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint16(data[2*i:], float16.Fromfloat32(x).Bits())
		}
	default:
		panic("unsupported tensor type " + kind.String())
	}
	return &ggml.Tensor{Name: name, Kind: uint32(kind), Shape: shape, WriterTo: bytesWriter(data)}
}

type bytesWriter []byte

func (b bytesWriter) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}
