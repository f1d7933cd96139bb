// Command render renders a Helm chart the way `helm template` does, offline
// and without Helm: Go's text/template with sprig's functions (minus env and
// expandenv, as in Helm) plus Helm's own (include, tpl, toYaml, mustToYaml,
// fromYaml, fromYamlArray, toJson, mustToJson, fromJson, fromJsonArray,
// required, fail, lookup; not the TOML ones),
// values coalesced from values.yaml, -f files and --set, the built-in objects
// .Values, .Release, .Chart, .Capabilities and .Template, missing keys
// rendering as empty, "<no value>" removed, every template file parsed into
// one set so the partials of _helpers.tpl are shared.  Each rendered file is
// split into YAML documents; every document must parse.
//
//	render --chart DIR [-f FILE]... [--set a.b=v]... [--name R] [--namespace NS]
//	       [--kube-version v1.30.0] [--api-versions group/version]... [--json]
//
// Output: the manifests as YAML (each with a "# Source:" line), or with
// --json one object {"values", "manifests": [{"source", "object"}], "notes"}.
// A failed render (required, fail, a template error) prints Helm's
// "Error: execution error at (file:line:col): message" and exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yamlv2 "gopkg.in/yaml.v2"
	"gopkg.in/yaml.v3"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// Chart is .Chart: the fields of Chart.yaml, capitalised as Helm's
// chart.Metadata exposes them.
type Chart struct {
	Name         string            `json:"name"`
	Home         string            `json:"home"`
	Sources      []string          `json:"sources"`
	Version      string            `json:"version"`
	Description  string            `json:"description"`
	Keywords     []string          `json:"keywords"`
	Icon         string            `json:"icon"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition"`
	Tags         string            `json:"tags"`
	AppVersion   string            `json:"appVersion"`
	Deprecated   bool              `json:"deprecated"`
	Annotations  map[string]string `json:"annotations"`
	KubeVersion  string            `json:"kubeVersion"`
	Type         string            `json:"type"`
	Dependencies []interface{}     `json:"dependencies"`
}

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has says whether an API version (or version/Kind) is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// Capabilities is .Capabilities (minimal: no HelmVersion build details).
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"coordination.k8s.io/v1", "discovery.k8s.io/v1", "scheduling.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1", "certificates.k8s.io/v1",
	"events.k8s.io/v1", "node.k8s.io/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1",
}

// ---- values ----------------------------------------------------------------

// readYAML reads YAML the way Helm's values do (sigs.k8s.io/yaml): through
// JSON, so every number is a float64 and every map a map[string]interface{}.
func readYAML(data []byte) (map[string]interface{}, error) {
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, err
	}
	if raw == nil {
		return map[string]interface{}{}, nil
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return nil, err
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(j, &out); err != nil {
		return nil, fmt.Errorf("not a map of values: %v", err)
	}
	return out, nil
}

// jsonable turns yaml's map[interface{}]interface{} into JSON-able maps.
func jsonable(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		for k, x := range t {
			t[k] = jsonable(x)
		}
		return t
	case map[interface{}]interface{}:
		m := map[string]interface{}{}
		for k, x := range t {
			m[fmt.Sprint(k)] = jsonable(x)
		}
		return m
	case []interface{}:
		for i, x := range t {
			t[i] = jsonable(x)
		}
		return t
	}
	return v
}

// coalesce merges src over dst as Helm does: maps merge key by key, any
// other value replaces, and a null in src deletes the key.
func coalesce(dst, src map[string]interface{}) map[string]interface{} {
	for k, sv := range src {
		if sv == nil {
			delete(dst, k)
			continue
		}
		sm, sIsMap := sv.(map[string]interface{})
		dm, dIsMap := dst[k].(map[string]interface{})
		if sIsMap && dIsMap {
			dst[k] = coalesce(dm, sm)
		} else {
			dst[k] = sv
		}
	}
	return dst
}

// parseSet applies one --set a.b.c=value (Helm's strvals typing for
// scalars: integers, true/false, null; {a,b} a list of strings; anything
// else a string).  One key=value per --set: no commas between pairs.
func parseSet(vals map[string]interface{}, expr string) error {
	eq := strings.IndexByte(expr, '=')
	if eq <= 0 {
		return fmt.Errorf("--set %q: expected key=value", expr)
	}
	keys := strings.Split(expr[:eq], ".")
	raw := expr[eq+1:]
	var value interface{} = raw
	if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
		// a list: {a,b,c}
		list := []interface{}{}
		for _, item := range strings.Split(raw[1:len(raw)-1], ",") {
			if item != "" {
				list = append(list, item)
			}
		}
		value = list
	} else if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
		value = n
	} else if raw == "true" || raw == "false" {
		value = raw == "true"
	} else if raw == "null" {
		value = nil
	}
	m := vals
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			m[k] = next
		}
		m = next
	}
	last := keys[len(keys)-1]
	if value == nil {
		delete(m, last)
	} else {
		m[last] = value
	}
	return nil
}

// ---- Helm's functions ------------------------------------------------------

// toYAML is Helm's toYaml: sigs.k8s.io/yaml.Marshal (JSON, then yaml.v2),
// without the final newline.
func toYAML(v interface{}) string {
	j, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	var obj interface{}
	if err := yamlv2.Unmarshal(j, &obj); err != nil {
		return ""
	}
	out, err := yamlv2.Marshal(obj)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(out), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m, err := readYAML([]byte(s))
	if err != nil {
		return map[string]interface{}{"Error": err.Error()}
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	var raw interface{}
	if err := yaml.Unmarshal([]byte(s), &raw); err != nil {
		return []interface{}{err.Error()}
	}
	j, err := json.Marshal(jsonable(raw))
	if err != nil {
		return []interface{}{err.Error()}
	}
	var out []interface{}
	if err := json.Unmarshal(j, &out); err != nil {
		return []interface{}{err.Error()}
	}
	return out
}

func toJSON(v interface{}) string {
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	var a []interface{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return []interface{}{err.Error()}
	}
	return a
}

func required(msg string, v interface{}) (interface{}, error) {
	if v == nil {
		return v, errors.New(msg)
	}
	if s, ok := v.(string); ok && s == "" {
		return v, errors.New(msg)
	}
	return v, nil
}

const recursionMaxNums = 1000

// funcMap builds the function map; include and tpl close over the
// template set being executed.
func funcMap(t **template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	extra := template.FuncMap{
		"toYaml": toYAML,
		"mustToYaml": func(v interface{}) (string, error) {
			if _, err := json.Marshal(v); err != nil {
				return "", err
			}
			return toYAML(v), nil
		},
		"mustToJson": func(v interface{}) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required":      required,
		"fail":          func(msg string) (string, error) { return "", errors.New(msg) },
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil // as `helm template`: no cluster
		},
		"include": func(name string, data interface{}) (string, error) {
			if included[name] > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			included[name]++
			defer func() { included[name]-- }()
			var buf strings.Builder
			if err := (*t).ExecuteTemplate(&buf, name, data); err != nil {
				return "", err
			}
			return buf.String(), nil
		},
		"tpl": func(text string, vals interface{}) (string, error) {
			clone, err := (*t).Clone()
			if err != nil {
				return "", err
			}
			clone.Option("missingkey=zero")
			name := "tpl"
			if m, ok := vals.(map[string]interface{}); ok {
				if tm, ok := m["Template"].(map[string]interface{}); ok {
					if n, ok := tm["Name"].(string); ok {
						name = n
					}
				}
			}
			if _, err := clone.New(name).Parse(text); err != nil {
				return "", fmt.Errorf("cannot parse template %q: %v", text, err)
			}
			var buf strings.Builder
			if err := clone.ExecuteTemplate(&buf, name, vals); err != nil {
				return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
			}
			return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// ---- rendering -------------------------------------------------------------

var execErr = regexp.MustCompile(`^template: ([^:]+):(\d+):(\d+): executing .* error calling (?:required|fail): (.*)$`)

// helmError words a template error as Helm does for required and fail.
func helmError(err error) string {
	msg := err.Error()
	first := msg
	if i := strings.Index(msg, "\n"); i >= 0 {
		first = msg[:i]
	}
	if m := execErr.FindStringSubmatch(first); m != nil {
		// the innermost message: after the last "error calling X: "
		inner := m[4]
		for _, fn := range []string{"error calling required: ", "error calling fail: "} {
			if i := strings.LastIndex(inner, fn); i >= 0 {
				inner = inner[i+len(fn):]
			}
		}
		return fmt.Sprintf("execution error at (%s:%s:%s): %s", m[1], m[2], m[3], inner)
	}
	return msg
}

type manifest struct {
	Source string      `json:"source"`
	Object interface{} `json:"object"`
	Text   string      `json:"-"`
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

func run() error {
	var files, sets, apiVersions listFlag
	chartDir := flag.String("chart", ".", "chart directory")
	name := flag.String("name", "release-name", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kube := flag.String("kube-version", "v1.30.0", "Kubernetes version of .Capabilities")
	asJSON := flag.Bool("json", false, "print JSON")
	flag.Var(&files, "f", "values file (repeatable)")
	flag.Var(&sets, "set", "key=value (repeatable)")
	flag.Var(&apiVersions, "api-versions", "extra API version of .Capabilities (repeatable)")
	flag.Parse()

	chartYAML, err := os.ReadFile(filepath.Join(*chartDir, "Chart.yaml"))
	if err != nil {
		return err
	}
	cm, err := readYAML(chartYAML)
	if err != nil {
		return fmt.Errorf("Chart.yaml: %v", err)
	}
	var chart Chart
	j, _ := json.Marshal(cm)
	if err := json.Unmarshal(j, &chart); err != nil {
		return fmt.Errorf("Chart.yaml: %v", err)
	}
	if chart.Name == "" || chart.Version == "" {
		return errors.New("Chart.yaml: name and version are required")
	}

	kv := strings.TrimPrefix(*kube, "v")
	parts := strings.SplitN(kv, ".", 3)
	if len(parts) < 2 {
		return fmt.Errorf("--kube-version %q: expected vMAJOR.MINOR.PATCH", *kube)
	}
	// Helm refuses a chart whose kubeVersion the cluster does not meet
	if chart.KubeVersion != "" {
		check := sprig.TxtFuncMap()["semverCompare"].(func(string, string) (bool, error))
		ok, err := check(chart.KubeVersion, "v"+kv)
		if err != nil {
			return fmt.Errorf("Chart.yaml: kubeVersion %q: %v", chart.KubeVersion, err)
		}
		if !ok {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes v%s", chart.KubeVersion, kv)
		}
	}

	values := map[string]interface{}{}
	if data, err := os.ReadFile(filepath.Join(*chartDir, "values.yaml")); err == nil {
		if values, err = readYAML(data); err != nil {
			return fmt.Errorf("values.yaml: %v", err)
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		user, err := readYAML(data)
		if err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		values = coalesce(values, user)
	}
	for _, s := range sets {
		if err := parseSet(values, s); err != nil {
			return err
		}
	}

	// as Helm's coalescing does, .Values always has a global map
	if _, ok := values["global"].(map[string]interface{}); !ok {
		values["global"] = map[string]interface{}{}
	}
	caps := Capabilities{
		KubeVersion: KubeVersion{Version: "v" + kv, Major: parts[0], Minor: parts[1], GitVersion: "v" + kv},
		APIVersions: append(VersionSet(builtinAPIVersions), apiVersions...),
		HelmVersion: map[string]string{"Version": "v3.16.0"},
	}
	release := map[string]interface{}{
		"Name": *name, "Namespace": *namespace, "IsUpgrade": false, "IsInstall": true,
		"Revision": 1, "Service": "Helm",
	}

	// every file under templates/, parsed into one set
	tdir := filepath.Join(*chartDir, "templates")
	var names []string
	err = filepath.Walk(tdir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, _ := filepath.Rel(tdir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	var t *template.Template
	t = template.New("gotpl").Option("missingkey=zero")
	t.Funcs(funcMap(&t))
	basePath := path.Join(chart.Name, "templates")
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(tdir, n))
		if err != nil {
			return err
		}
		if _, err := t.New(path.Join(basePath, n)).Parse(string(data)); err != nil {
			return fmt.Errorf("parse error: %v", err)
		}
	}

	var manifests []manifest
	notes := ""
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		full := path.Join(basePath, n)
		top := map[string]interface{}{
			"Values":       values,
			"Release":      release,
			"Chart":        chart,
			"Capabilities": caps,
			"Files":        map[string]interface{}{},
			"Template":     map[string]interface{}{"Name": full, "BasePath": basePath},
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, full, top); err != nil {
			return errors.New(helmError(err))
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			notes = out
			continue
		}
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		for _, doc := range docSep.Split(out, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			var obj interface{}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return fmt.Errorf("YAML parse error on %s: %v\n%s", full, err, doc)
			}
			if obj == nil {
				continue // comments only
			}
			obj = jsonable(obj)
			if _, ok := obj.(map[string]interface{}); !ok {
				return fmt.Errorf("%s: a document that is not an object:\n%s", full, doc)
			}
			manifests = append(manifests, manifest{Source: full, Object: obj, Text: strings.Trim(doc, "\n")})
		}
	}

	if *asJSON {
		out := map[string]interface{}{"values": values, "manifests": manifests, "notes": notes}
		b, err := json.MarshalIndent(out, "", " ")
		if err != nil {
			return err
		}
		os.Stdout.Write(append(b, '\n'))
		return nil
	}
	for _, m := range manifests {
		fmt.Printf("---\n# Source: %s\n%s\n", m.Source, m.Text)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
}
