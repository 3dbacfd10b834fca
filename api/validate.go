package api

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/kmsd/kmsd/service"
)

// namedPatterns are the patterns a `kms:"pattern=NAME"` tag may name.
var namedPatterns = map[string]string{
	"aliasName": `^[a-zA-Z0-9:/_-]+$`,
	// Key policy and grant shapes.
	"grantName":        `^[a-zA-Z0-9:/_-]+$`,
	"principalId":      `^[\w+=,.@:/-]+$`,
	"servicePrincipal": `^([A-Za-z0-9\-]+)\.([A-Za-z0-9\-]+)(\.[A-Za-z0-9\-]+)+$`,
	"sourceArn":        `^arn:aws[a-z0-9-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{12}:.+$`,
}

var compiledPatterns = func() map[string]*regexp.Regexp {
	m := make(map[string]*regexp.Regexp, len(namedPatterns))
	for name, src := range namedPatterns {
		m[name] = regexp.MustCompile(src)
	}
	return m
}()

// fieldRule is the precomputed metadata of one struct field.
type fieldRule struct {
	index     int
	name      string // path segment: the JSON name with its first letter lowered
	required  bool
	sensitive bool
	hasMin    bool
	min       int64
	hasMax    bool
	max       int64
	enum      []string
	enumText  string // "[A, B]"
	pattern   *regexp.Regexp
	patSrc    string
	elem      *structRules // struct fields, or elements of a slice of structs
}

// structRules is the metadata of one struct type.
type structRules struct {
	fields []fieldRule
}

var rulesCache sync.Map // reflect.Type -> *structRules

// rulesFor returns the (cached) validation rules of struct type t.
func rulesFor(t reflect.Type) (*structRules, error) {
	if r, ok := rulesCache.Load(t); ok {
		return r.(*structRules), nil
	}
	r, err := buildRules(t, map[reflect.Type]*structRules{})
	if err != nil {
		return nil, err
	}
	actual, _ := rulesCache.LoadOrStore(t, r)
	return actual.(*structRules), nil
}

func buildRules(t reflect.Type, building map[reflect.Type]*structRules) (*structRules, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("api: %v is not a struct", t)
	}
	if r, ok := building[t]; ok {
		return r, nil // recursive type: fields are being filled in
	}
	r := &structRules{}
	building[t] = r
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		jsonName, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if jsonName == "-" {
			continue
		}
		if jsonName == "" {
			jsonName = sf.Name
		}
		fr := fieldRule{index: i, name: lowerFirst(jsonName)}
		if err := parseKMSTag(sf, &fr); err != nil {
			return nil, fmt.Errorf("api: %v.%s: %w", t, sf.Name, err)
		}
		// Recurse into struct-typed fields and slices of structs.
		et := derefType(sf.Type)
		if et.Kind() == reflect.Slice {
			et = derefType(et.Elem())
		}
		if et.Kind() == reflect.Struct && et != reflect.TypeFor[service.Timestamp]() {
			sub, err := buildRules(et, building)
			if err != nil {
				return nil, err
			}
			fr.elem = sub
		}
		if fr.constrained() {
			r.fields = append(r.fields, fr)
		}
	}
	return r, nil
}

func (fr *fieldRule) constrained() bool {
	return fr.required || fr.hasMin || fr.hasMax || fr.enum != nil || fr.pattern != nil ||
		(fr.elem != nil && fr.elem.hasRules())
}

func (r *structRules) hasRules() bool { return len(r.fields) > 0 }

func derefType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToLower(string(r)) + s[n:]
}

func parseKMSTag(sf reflect.StructField, fr *fieldRule) error {
	tag, ok := sf.Tag.Lookup("kms")
	if !ok || tag == "" {
		return nil
	}
	base := derefType(sf.Type)
	isString := base.Kind() == reflect.String
	sized := isString || isIntKind(base.Kind()) || base.Kind() == reflect.Slice || base.Kind() == reflect.Map
	for opt := range strings.SplitSeq(tag, ",") {
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "required":
			fr.required = true
		case "sensitive":
			fr.sensitive = true
		case "min", "max":
			if !sized {
				return fmt.Errorf("%s on a %v field", key, sf.Type)
			}
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return fmt.Errorf("bad %s: %w", key, err)
			}
			if key == "min" {
				fr.hasMin, fr.min = true, n
			} else {
				fr.hasMax, fr.max = true, n
			}
		case "enum":
			if !isString || val == "" {
				return fmt.Errorf("enum needs a string field and values")
			}
			fr.enum = strings.Split(val, "|")
			fr.enumText = "[" + strings.Join(fr.enum, ", ") + "]"
		case "pattern":
			re, ok := compiledPatterns[val]
			if !isString || !ok {
				return fmt.Errorf("unknown pattern %q or not a string field", val)
			}
			fr.pattern, fr.patSrc = re, namedPatterns[val]
		default:
			return fmt.Errorf("unknown kms tag option %q", opt)
		}
	}
	return nil
}

func isIntKind(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// validateInput checks v (a pointer to a struct) against its `kms` tags and
// returns a ValidationException listing every violation, or nil.
func validateInput(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil
	}
	rv = rv.Elem()
	rules, err := rulesFor(rv.Type())
	if err != nil {
		return err // a programming error: answered as a 500
	}
	var vs []string
	vs = rules.check(rv, "", vs)
	if len(vs) == 0 {
		return nil
	}
	noun := "errors"
	if len(vs) == 1 {
		noun = "error"
	}
	return service.ValidationError("%d validation %s detected: %s", len(vs), noun, strings.Join(vs, "; "))
}

func (r *structRules) check(sv reflect.Value, prefix string, vs []string) []string {
	for i := range r.fields {
		fr := &r.fields[i]
		vs = fr.check(sv.Field(fr.index), prefix+fr.name, vs)
	}
	return vs
}

func violation(value, path, constraint string) string {
	return "Value " + value + "at '" + path + "' failed to satisfy constraint: Member " + constraint
}

func (fr *fieldRule) check(v reflect.Value, path string, vs []string) []string {
	// Null: a nil pointer, slice or map.
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			if fr.required {
				vs = append(vs, violation("null ", path, "must not be null"))
			}
			return vs
		}
		v = v.Elem()
	}
	if (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.IsNil() {
		if fr.required {
			vs = append(vs, violation("null ", path, "must not be null"))
		}
		return vs
	}

	switch {
	case v.Kind() == reflect.String:
		s := v.String()
		shown := "'" + s + "' "
		if fr.sensitive {
			shown = ""
		}
		n := int64(utf8.RuneCountInString(s))
		if fr.hasMin && n < fr.min {
			vs = append(vs, violation(shown, path, "must have length greater than or equal to "+strconv.FormatInt(fr.min, 10)))
		}
		if fr.hasMax && n > fr.max {
			vs = append(vs, violation(shown, path, "must have length less than or equal to "+strconv.FormatInt(fr.max, 10)))
		}
		if fr.pattern != nil && !fr.pattern.MatchString(s) {
			vs = append(vs, violation(shown, path, "must satisfy regular expression pattern: "+fr.patSrc))
		}
		if fr.enum != nil && !contains(fr.enum, s) {
			vs = append(vs, violation(shown, path, "must satisfy enum value set: "+fr.enumText))
		}
	case isIntKind(v.Kind()):
		var n int64
		var shown string
		if v.CanInt() {
			n = v.Int()
			shown = strconv.FormatInt(n, 10)
		} else {
			u := v.Uint()
			n = int64(min(u, 1<<63-1))
			shown = strconv.FormatUint(u, 10)
		}
		shown = "'" + shown + "' "
		if fr.sensitive {
			shown = ""
		}
		if fr.hasMin && n < fr.min {
			vs = append(vs, violation(shown, path, "must have value greater than or equal to "+strconv.FormatInt(fr.min, 10)))
		}
		if fr.hasMax && n > fr.max {
			vs = append(vs, violation(shown, path, "must have value less than or equal to "+strconv.FormatInt(fr.max, 10)))
		}
	case v.Kind() == reflect.Slice || v.Kind() == reflect.Map:
		shown := ""
		if !fr.sensitive && v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String {
			parts := make([]string, v.Len())
			for i := range parts {
				parts[i] = v.Index(i).String()
			}
			shown = "'[" + strings.Join(parts, ", ") + "]' "
		}
		n := int64(v.Len())
		if fr.hasMin && n < fr.min {
			vs = append(vs, violation(shown, path, "must have length greater than or equal to "+strconv.FormatInt(fr.min, 10)))
		}
		if fr.hasMax && n > fr.max {
			vs = append(vs, violation(shown, path, "must have length less than or equal to "+strconv.FormatInt(fr.max, 10)))
		}
		if fr.elem != nil && v.Kind() == reflect.Slice {
			for i := 0; i < v.Len(); i++ {
				ev := v.Index(i)
				for ev.Kind() == reflect.Pointer && !ev.IsNil() {
					ev = ev.Elem()
				}
				if ev.Kind() != reflect.Struct {
					continue // nil element pointer: nothing to check inside
				}
				vs = fr.elem.check(ev, path+"."+strconv.Itoa(i+1)+".member.", vs)
			}
		}
	case v.Kind() == reflect.Struct && fr.elem != nil:
		vs = fr.elem.check(v, path+".", vs)
	}
	return vs
}

func contains(set []string, s string) bool {
	for _, e := range set {
		if e == s {
			return true
		}
	}
	return false
}
