// Command render renders a Helm chart the way `helm template` does, without Helm: Go's text/template with Sprig's
// functions and Helm's own (include, tpl, required, fail, toYaml, fromYaml, toJson, fromJson, lookup), the chart's
// values.yaml coalesced with -f files, and .Release, .Chart, .Capabilities and .Template objects shaped like Helm's.
// It follows Helm 3's engine (pkg/engine): templates of the chart share one template set, files whose names start
// with "_" are parsed but not rendered, missing keys render as empty, values are read with sigs.k8s.io/yaml (so
// numbers are float64, as in Helm), and each rendered document must parse as YAML. Subcharts and .Files globbing are
// not supported: the chart under test uses neither.
//
// Usage: render -chart DIR [-f values.yaml]... [-name RELEASE] [-namespace NS] [-kube-version v1.30.0]
//
//	[-api-versions group/version]... -out DIR
//
// It writes DIR/manifests.yaml (documents separated by ---, each headed "# Source: chart/templates/file", as helm
// template prints them), DIR/manifests.json ([{"source": ..., "object": {...}}]) and DIR/NOTES.txt (what helm install
// prints after installing). Errors go to stderr with exit 1,
// worded as Helm words them ("execution error at (streams/templates/x.yaml:3:4): message").
//
// Built in GOPATH mode from Debian's packages only (golang-go, golang-github-masterminds-sprig-dev,
// golang-k8s-sigs-yaml-dev), which install their sources under /usr/share/gocode/src without the /v3 of the module
// paths (Go's GOPATH mode resolves sprig's own /v3 imports there):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o render ./tests/chart/render
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
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var valueFiles, apiVersions stringList
	chartDir := flag.String("chart", "", "chart directory")
	name := flag.String("name", "streams", "release name")
	namespace := flag.String("namespace", "default", "release namespace")
	kubeVersion := flag.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	out := flag.String("out", "", "output directory")
	flag.Var(&valueFiles, "f", "values file (repeatable; later files win)")
	flag.Var(&apiVersions, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	flag.Parse()
	if *chartDir == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: render -chart DIR [-f values.yaml]... -out DIR")
		os.Exit(2)
	}

	docs, notes, err := render(*chartDir, valueFiles, *name, *namespace, *kubeVersion, apiVersions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	if err := write(*out, docs, notes); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// document is one rendered Kubernetes object and the template it came from.
type document struct {
	Source string                 `json:"source"`
	Text   string                 `json:"-"`
	Object map[string]interface{} `json:"object"`
}

// metadata is the part of Chart.yaml Helm exposes as .Chart (field names as Helm's chart.Metadata).
type metadata struct {
	Name        string            `json:"name"`
	Home        string            `json:"home,omitempty"`
	Sources     []string          `json:"sources,omitempty"`
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Keywords    []string          `json:"keywords,omitempty"`
	Icon        string            `json:"icon,omitempty"`
	APIVersion  string            `json:"apiVersion"`
	AppVersion  string            `json:"appVersion,omitempty"`
	KubeVersion string            `json:"kubeVersion,omitempty"`
	Type        string            `json:"type,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Deprecated  bool              `json:"deprecated,omitempty"`
}

// kubeVersionInfo mirrors Helm's chartutil.KubeVersion.
type kubeVersionInfo struct {
	Version string
	Major   string
	Minor   string
}

func (k kubeVersionInfo) String() string     { return k.Version }
func (k kubeVersionInfo) GitVersion() string { return k.Version }

// versionSet mirrors Helm's chartutil.VersionSet.
type versionSet []string

func (v versionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type capabilities struct {
	KubeVersion kubeVersionInfo
	APIVersions versionSet
	HelmVersion map[string]string
}

// builtinAPIVersions are the group versions of a plain cluster, as Helm's default capabilities list them.
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2", "networking.k8s.io/v1",
	"rbac.authorization.k8s.io/v1", "storage.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
	"scheduling.k8s.io/v1", "apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1",
	"certificates.k8s.io/v1", "events.k8s.io/v1", "node.k8s.io/v1",
}

func render(chartDir string, valueFiles []string, releaseName, namespace, kubeVersion string, extraAPIVersions []string) ([]document, string, error) {
	chart, err := loadMetadata(chartDir)
	if err != nil {
		return nil, "", err
	}
	caps, err := makeCapabilities(kubeVersion, extraAPIVersions)
	if err != nil {
		return nil, "", err
	}
	if chart.KubeVersion != "" {
		constraint, err := semver.NewConstraint(chart.KubeVersion)
		if err != nil {
			return nil, "", fmt.Errorf("chart's kubeVersion %q is not a valid constraint: %w", chart.KubeVersion, err)
		}
		v, _ := semver.NewVersion(caps.KubeVersion.Version)
		if !constraint.Check(v) {
			return nil, "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", chart.KubeVersion, caps.KubeVersion.Version)
		}
	}

	values, err := readValues(filepath.Join(chartDir, "values.yaml"), true)
	if err != nil {
		return nil, "", err
	}
	for _, file := range valueFiles {
		user, err := readValues(file, false)
		if err != nil {
			return nil, "", err
		}
		values = coalesce(user, values)
	}

	templates, err := loadTemplates(chartDir, chart.Name)
	if err != nil {
		return nil, "", err
	}
	top := map[string]interface{}{
		"Values": values,
		"Release": map[string]interface{}{
			"Name": releaseName, "Namespace": namespace, "IsInstall": true, "IsUpgrade": false,
			"Revision": 1, "Service": "Helm",
		},
		"Chart":        chart,
		"Capabilities": caps,
		"Files":        map[string]interface{}{},
	}
	rendered, notes, err := renderTemplates(templates, top, path.Join(chart.Name, "templates"))
	if err != nil {
		return nil, "", err
	}
	docs, err := split(rendered)
	return docs, notes, err
}

func loadMetadata(chartDir string) (*metadata, error) {
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Chart.yaml file is missing: %w", err)
	}
	var md metadata
	if err := yaml.UnmarshalStrict(data, &md); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %w", err)
	}
	// Helm's chart validation (pkg/chart/metadata.go).
	switch {
	case md.APIVersion != "v2":
		return nil, fmt.Errorf("validation: chart.metadata.apiVersion must be v2 for a Helm 3 chart (is %q)", md.APIVersion)
	case md.Name == "":
		return nil, errors.New("validation: chart.metadata.name is required")
	case md.Version == "":
		return nil, errors.New("validation: chart.metadata.version is required")
	case md.Type != "" && md.Type != "application" && md.Type != "library":
		return nil, fmt.Errorf("validation: chart.metadata.type must be application or library (is %q)", md.Type)
	}
	if _, err := semver.StrictNewVersion(md.Version); err != nil {
		return nil, fmt.Errorf("validation: chart.metadata.version %q is invalid", md.Version)
	}
	return &md, nil
}

func makeCapabilities(kubeVersion string, extra []string) (*capabilities, error) {
	v, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return nil, fmt.Errorf("invalid -kube-version %q: %w", kubeVersion, err)
	}
	versions := append(append(versionSet{}, builtinAPIVersions...), extra...)
	return &capabilities{
		KubeVersion: kubeVersionInfo{Version: "v" + v.String(), Major: fmt.Sprint(v.Major()), Minor: fmt.Sprint(v.Minor())},
		APIVersions: versions,
		HelmVersion: map[string]string{"Version": "v3.14.0"},
	}, nil
}

// readValues reads a values file as Helm's chartutil.ReadValues does (sigs.k8s.io/yaml: numbers become float64).
func readValues(file string, chartDefaults bool) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if chartDefaults && os.IsNotExist(err) {
			return map[string]interface{}{}, nil
		}
		return nil, err
	}
	var values map[string]interface{}
	if err := yaml.Unmarshal(data, &values); err != nil {
		return nil, fmt.Errorf("failed to parse %s: %w", file, err)
	}
	if values == nil {
		values = map[string]interface{}{}
	}
	return values, nil
}

// coalesce merges user values over defaults as Helm does: maps merge key by key, anything else is replaced, and a
// null user value deletes the key.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	result := map[string]interface{}{}
	for k, v := range defaults {
		result[k] = v
	}
	for k, v := range user {
		if v == nil {
			delete(result, k)
			continue
		}
		userMap, userIsMap := v.(map[string]interface{})
		defaultMap, defaultIsMap := result[k].(map[string]interface{})
		if userIsMap && defaultIsMap {
			result[k] = coalesce(userMap, defaultMap)
		} else {
			result[k] = v
		}
	}
	return result
}

type templateFile struct {
	name string // chart/templates/relative/path
	text string
}

func loadTemplates(chartDir, chartName string) ([]templateFile, error) {
	root := filepath.Join(chartDir, "templates")
	var files []templateFile
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		files = append(files, templateFile{name: path.Join(chartName, filepath.ToSlash(rel)), text: string(data)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot read templates: %w", err)
	}
	// Helm parses deeper paths first, then by name (engine.sortTemplates).
	sort.Slice(files, func(i, j int) bool {
		ci, cj := strings.Count(files[i].name, "/"), strings.Count(files[j].name, "/")
		if ci != cj {
			return ci > cj
		}
		return files[i].name > files[j].name
	})
	return files, nil
}

// warnWrap marks the messages of required and fail so that errors show them alone, as Helm does.
const warnStart, warnEnd = "HELM[", "]HELM"

var warnRegex = regexp.MustCompile(`HELM\[(.*)\]HELM`)

func funcMap(t *template.Template, basePath string) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	f["tpl"] = func(text string, vals interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		clone.Funcs(funcMap(clone, basePath))
		if _, err := clone.New("tpl").Parse(text); err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf strings.Builder
		if err := clone.ExecuteTemplate(&buf, "tpl", vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(warn string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(warnStart + warn + warnEnd)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(warnStart + warn + warnEnd)
		}
		return val, nil
	}
	f["fail"] = func(msg string) (string, error) { return "", errors.New(warnStart + msg + warnEnd) }
	f["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	f["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	f["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	f["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	// No cluster: lookup finds nothing, as under `helm template`.
	f["lookup"] = func(string, string, string, string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

type renderedFile struct {
	name string
	text string
}

func renderTemplates(files []templateFile, top map[string]interface{}, basePath string) (result []renderedFile, notes string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rendering template failed: %v", r)
			result = nil
		}
	}()
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(funcMap(t, basePath))
	for _, file := range files {
		if _, err := t.New(file.name).Parse(file.text); err != nil {
			return nil, "", fmt.Errorf("parse error in %s: %w", file.name, err)
		}
	}
	for _, file := range files {
		base := path.Base(file.name)
		if strings.HasPrefix(base, "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": file.name, "BasePath": basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, file.name, vals); err != nil {
			return nil, "", cleanupExecError(file.name, err)
		}
		if base == "NOTES.txt" {
			notes = strings.ReplaceAll(buf.String(), "<no value>", "")
			continue // not a manifest
		}
		result = append(result, renderedFile{name: file.name, text: strings.ReplaceAll(buf.String(), "<no value>", "")})
	}
	sort.Slice(result, func(i, j int) bool { return result[i].name < result[j].name })
	return result, notes, nil
}

// cleanupExecError words a template error as Helm does: "execution error at (file:line:col): message".
func cleanupExecError(filename string, err error) error {
	var execErr template.ExecError
	if !errors.As(err, &execErr) {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error at (%s): %s", filename, err)
	}
	location := tokens[1]
	if parts := warnRegex.FindStringSubmatch(tokens[2]); len(parts) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", location, parts[1])
	}
	return err
}

var separator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// split cuts each rendered file into YAML documents as Helm's releaseutil.SplitManifests does, drops empty ones,
// and parses each: a document that is not valid YAML, or not a Kubernetes object, is an error naming its template.
func split(files []renderedFile) ([]document, error) {
	var docs []document
	for _, file := range files {
		for _, text := range separator.Split(file.text, -1) {
			if strings.TrimSpace(text) == "" {
				continue
			}
			var object map[string]interface{}
			if err := yaml.Unmarshal([]byte(text), &object); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %w\n%s", file.name, err, text)
			}
			if object == nil {
				continue // only comments
			}
			if _, ok := object["apiVersion"].(string); !ok {
				return nil, fmt.Errorf("%s: a document without apiVersion:\n%s", file.name, text)
			}
			if _, ok := object["kind"].(string); !ok {
				return nil, fmt.Errorf("%s: a document without kind:\n%s", file.name, text)
			}
			docs = append(docs, document{Source: file.name, Text: strings.TrimSpace(text), Object: object})
		}
	}
	return docs, nil
}

func write(dir string, docs []document, notes string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "NOTES.txt"), []byte(notes), 0o644); err != nil {
		return err
	}
	var text bytes.Buffer
	for _, doc := range docs {
		fmt.Fprintf(&text, "---\n# Source: %s\n%s\n", doc.Source, doc.Text)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifests.yaml"), text.Bytes(), 0o644); err != nil {
		return err
	}
	if docs == nil {
		docs = []document{}
	}
	data, err := json.MarshalIndent(docs, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "manifests.json"), data, 0o644)
}
