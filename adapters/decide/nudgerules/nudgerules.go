// Package nudgerules is the nudge decider that needs no model: a file of
// rules {name, match, message}; the first rule whose case-insensitive
// regular expression matches any new caption of the window fires.
package nudgerules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/foresight-vision/foresight/ports"
)

// Engine is the name the decider gives its decisions.
const Engine = "rules"

// maxFileBytes bounds a rules file; a real one is a few kilobytes.
const maxFileBytes = 1 << 20

// maxQuotedCaption bounds the caption quoted in a decision's reasoning.
const maxQuotedCaption = 200

// Rule is one entry of a rules file.
type Rule struct {
	Name string `yaml:"name" json:"name"`
	// Match is a regular expression (RE2 syntax), matched ignoring case.
	Match   string `yaml:"match" json:"match"`
	Message string `yaml:"message" json:"message"`
}

// File is the shape of a rules file.
type File struct {
	Rules []Rule `yaml:"rules" json:"rules"`
}

type compiledRule struct {
	Rule
	re *regexp.Regexp
}

// Decider implements ports.NudgeDecider over a fixed list of rules.
type Decider struct {
	rules []compiledRule
}

// Load reads and checks the rules file at path (FORESIGHT_NUDGE_RULES). It is
// JSON when its name ends in .json, YAML when in .yaml or .yml, and
// otherwise JSON when its first non-blank character is '{'. Errors name the
// file and, when one is at fault, the rule.
func Load(path string) (*Decider, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("nudge rules: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("nudge rules file %q: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("nudge rules file %q: larger than %d bytes", path, maxFileBytes)
	}
	d, err := Parse(data, isJSON(path, data))
	if err != nil {
		return nil, fmt.Errorf("nudge rules file %q: %w", path, err)
	}
	return d, nil
}

func isJSON(path string, data []byte) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return true
	case ".yaml", ".yml":
		return false
	}
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}

// Parse decodes a rules file's content, JSON or YAML, rejecting unknown
// fields, and checks every rule.
func Parse(data []byte, asJSON bool) (*Decider, error) {
	var file File
	if asJSON {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&file); err != nil {
			return nil, fmt.Errorf("decode JSON: %w", err)
		}
		if dec.More() {
			return nil, errors.New("decode JSON: more than one value")
		}
	} else {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&file); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("no rules: the file is empty")
			}
			return nil, fmt.Errorf("decode YAML: %w", err)
		}
	}
	return New(file.Rules)
}

// New checks and compiles rules, in order: each needs a unique name, a
// valid expression and a message.
func New(rules []Rule) (*Decider, error) {
	if len(rules) == 0 {
		return nil, errors.New("no rules: expected a top-level \"rules\" list with at least one rule")
	}
	seen := make(map[string]bool, len(rules))
	d := &Decider{rules: make([]compiledRule, 0, len(rules))}
	for i, r := range rules {
		r.Name = strings.TrimSpace(r.Name)
		at := fmt.Sprintf("rule %d %q", i+1, r.Name)
		switch {
		case r.Name == "":
			return nil, fmt.Errorf("rule %d: no name", i+1)
		case seen[r.Name]:
			return nil, fmt.Errorf("%s: name used twice", at)
		case strings.TrimSpace(r.Match) == "":
			return nil, fmt.Errorf("%s: no match expression", at)
		case strings.TrimSpace(r.Message) == "":
			return nil, fmt.Errorf("%s: no message", at)
		}
		seen[r.Name] = true
		re, err := regexp.Compile("(?i)" + r.Match)
		if err != nil {
			return nil, fmt.Errorf("%s: match: %w", at, err)
		}
		d.rules = append(d.rules, compiledRule{Rule: r, re: re})
	}
	return d, nil
}

// Rules returns the rules in order.
func (d *Decider) Rules() []Rule {
	out := make([]Rule, len(d.rules))
	for i, r := range d.rules {
		out[i] = r.Rule
	}
	return out
}

// Decide implements ports.NudgeDecider: the first rule, in file order, that
// matches any new caption of the window fires. Captions an earlier decision
// judged are context only: matching them again would nudge twice on one
// piece of evidence.
func (d *Decider) Decide(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
	if err := ctx.Err(); err != nil {
		return ports.NudgeDecision{}, err
	}
	for _, r := range d.rules {
		for _, c := range in.Captions {
			if c.New && r.re.MatchString(c.Text) {
				return ports.NudgeDecision{
					Deliver:   true,
					Message:   r.Message,
					Reasoning: fmt.Sprintf("rule %q matched caption %s: %q", r.Name, c.ID, quote(c.Text)),
					Engine:    Engine,
					Model:     r.Name,
				}, nil
			}
		}
	}
	return ports.NudgeDecision{Reasoning: fmt.Sprintf("no rule matched %d captions", len(in.Captions)), Engine: Engine}, nil
}

func quote(s string) string {
	if r := []rune(s); len(r) > maxQuotedCaption {
		return string(r[:maxQuotedCaption]) + "…"
	}
	return s
}
