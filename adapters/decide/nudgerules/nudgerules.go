// Package nudgerules is the nudge decider that needs no model: a file of
// rules {name, match, biometric, alert, windows, message}; the first rule
// whose conditions all hold over the window, on at least one new caption or
// biometric window, fires.
package nudgerules

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
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

// Rule is one entry of a rules file. It needs at least one condition:
// Match, Biometric or Alert; those it has must all hold.
type Rule struct {
	Name string `yaml:"name" json:"name"`
	// Match is a regular expression (RE2 syntax), matched ignoring case
	// against the window's captions.
	Match string `yaml:"match,omitempty" json:"match,omitempty"`
	// Biometric is a condition on a biometric window's feature, "<field>
	// <op> <number>" with the upload's field names and op one of > >= < <=
	// == != (for example "hrMean > 120"); a window without the field (or
	// with it null) does not meet it.
	Biometric string `yaml:"biometric,omitempty" json:"biometric,omitempty"`
	// Alert is the least risk alert level a window must have, e.g.
	// "HIGH ALERT" (also met by "CRITICAL ALERT").
	Alert string `yaml:"alert,omitempty" json:"alert,omitempty"`
	// Windows is how many of the window's biometric windows must meet
	// Biometric and Alert; zero means 1.
	Windows int    `yaml:"windows,omitempty" json:"windows,omitempty"`
	Message string `yaml:"message" json:"message"`
}

// File is the shape of a rules file.
type File struct {
	Rules []Rule `yaml:"rules" json:"rules"`
}

type compiledRule struct {
	Rule
	re        *regexp.Regexp // nil without Match
	cond      *condition     // nil without Biometric
	alertRank int            // -1 without Alert
}

// condition is a parsed Rule.Biometric.
type condition struct {
	field string
	op    string
	value float64
}

var conditionPattern = regexp.MustCompile(`^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$`)

func parseCondition(s string) (*condition, error) {
	m := conditionPattern.FindStringSubmatch(s)
	if m == nil {
		return nil, fmt.Errorf("biometric: %q is not \"<field> <op> <number>\" (op one of > >= < <= == !=)", s)
	}
	v, err := strconv.ParseFloat(m[3], 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil, fmt.Errorf("biometric: %q is not a number", m[3])
	}
	return &condition{field: m[1], op: m[2], value: v}, nil
}

func (c *condition) holds(features map[string]float64) bool {
	v, ok := features[c.field]
	if !ok {
		return false
	}
	switch c.op {
	case ">":
		return v > c.value
	case ">=":
		return v >= c.value
	case "<":
		return v < c.value
	case "<=":
		return v <= c.value
	case "==":
		return v == c.value
	}
	return v != c.value
}

func (c *condition) String() string {
	return c.field + " " + c.op + " " + strconv.FormatFloat(c.value, 'g', -1, 64)
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
		case strings.TrimSpace(r.Match) == "" && strings.TrimSpace(r.Biometric) == "" && strings.TrimSpace(r.Alert) == "":
			return nil, fmt.Errorf("%s: no match expression, biometric condition or alert", at)
		case strings.TrimSpace(r.Message) == "":
			return nil, fmt.Errorf("%s: no message", at)
		case r.Windows < 0:
			return nil, fmt.Errorf("%s: windows must be at least 1", at)
		case r.Windows > 0 && strings.TrimSpace(r.Biometric) == "" && strings.TrimSpace(r.Alert) == "":
			return nil, fmt.Errorf("%s: windows counts biometric windows: give biometric or alert", at)
		}
		seen[r.Name] = true
		c := compiledRule{Rule: r, alertRank: -1}
		if strings.TrimSpace(r.Match) != "" {
			re, err := regexp.Compile("(?i)" + r.Match)
			if err != nil {
				return nil, fmt.Errorf("%s: match: %w", at, err)
			}
			c.re = re
		}
		if strings.TrimSpace(r.Biometric) != "" {
			cond, err := parseCondition(r.Biometric)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", at, err)
			}
			c.cond = cond
		}
		if a := strings.TrimSpace(r.Alert); a != "" {
			if c.alertRank = ports.AlertRank(strings.ToUpper(a)); c.alertRank < 0 {
				return nil, fmt.Errorf("%s: alert %q: want one of %s", at, a, strings.Join(ports.AlertLevels, ", "))
			}
		}
		if c.Windows == 0 {
			c.Windows = 1
		}
		d.rules = append(d.rules, c)
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

// Decide implements ports.NudgeDecider: the first rule, in file order, whose
// conditions all hold over the window fires, provided a caption or
// biometric window it matched is new. What an earlier decision judged is
// context only: it may complete a rule (the second of two fast-heart
// windows) but never fire one alone, which would nudge twice on one piece
// of evidence.
func (d *Decider) Decide(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
	if err := ctx.Err(); err != nil {
		return ports.NudgeDecision{}, err
	}
	for _, r := range d.rules {
		if why, ok := r.fires(in); ok {
			return ports.NudgeDecision{Deliver: true, Message: r.Message, Reasoning: why, Engine: Engine, Model: r.Name}, nil
		}
	}
	why := fmt.Sprintf("no rule matched %d captions", len(in.Captions))
	if len(in.Biometrics) > 0 {
		why += fmt.Sprintf(" and %d biometric windows", len(in.Biometrics))
	}
	return ports.NudgeDecision{Reasoning: why, Engine: Engine}, nil
}

// fires reports whether r holds over in on new evidence, and why.
func (r compiledRule) fires(in ports.NudgeInput) (string, bool) {
	anyNew := false
	var parts []string
	if r.re != nil {
		var hit *ports.CaptionRef
		for i, c := range in.Captions {
			if r.re.MatchString(c.Text) && (hit == nil || c.New && !hit.New) {
				hit = &in.Captions[i]
			}
		}
		if hit == nil {
			return "", false
		}
		anyNew = anyNew || hit.New
		parts = append(parts, fmt.Sprintf("matched caption %s: %q", hit.ID, quote(hit.Text)))
	}
	if r.cond != nil || r.alertRank >= 0 {
		var ids []string
		for _, w := range in.Biometrics {
			if (r.cond == nil || r.cond.holds(w.Features)) && (r.alertRank < 0 || ports.AlertRank(w.AlertLevel) >= r.alertRank) {
				ids = append(ids, w.ID)
				anyNew = anyNew || w.New
			}
		}
		if len(ids) < r.Windows {
			return "", false
		}
		var what []string
		if r.cond != nil {
			what = append(what, r.cond.String())
		}
		if r.alertRank >= 0 {
			what = append(what, "alert at least "+ports.AlertLevels[r.alertRank])
		}
		parts = append(parts, fmt.Sprintf("%d biometric windows met %s (%s)", len(ids), strings.Join(what, " and "),
			strings.Join(ids, ", ")))
	}
	if !anyNew {
		return "", false
	}
	return fmt.Sprintf("rule %q %s", r.Name, strings.Join(parts, "; ")), true
}

func quote(s string) string {
	if r := []rune(s); len(r) > maxQuotedCaption {
		return string(r[:maxQuotedCaption]) + "…"
	}
	return s
}
