package entente_test

// docs/architecture.md walks a request through the code naming files and
// functions; this test keeps those names true. Every backquoted path must
// exist, and every backquoted Go name must be declared: in one of the Go
// files named in the same paragraph or list item when it names any, so that
// a reader who opens that file finds it there.

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

const architectureDoc = "docs/architecture.md"

// declarations maps each name a reader may write to the files declaring
// it: "Name" for a top-level declaration, "Type.Name" for a method, a struct
// field or an interface method, and "pkg.Name" for a top-level declaration
// of package pkg, and "pkg.Type.Name" for a member of one of its types.
type declarations map[string][]string

func (d declarations) add(key, file string) {
	if !slices.Contains(d[key], file) {
		d[key] = append(d[key], file)
	}
}

// collectDeclarations parses the repository's production Go files.
func collectDeclarations(t *testing.T) declarations {
	t.Helper()
	decls := declarations{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if name := e.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		file := filepath.ToSlash(path)
		pkg := f.Name.Name
		top := func(name string) {
			decls.add(name, file)
			decls.add(pkg+"."+name, file)
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil || len(d.Recv.List) == 0 {
					top(d.Name.Name)
					continue
				}
				if recv := receiverName(d.Recv.List[0].Type); recv != "" {
					decls.add(recv+"."+d.Name.Name, file)
					decls.add(pkg+"."+recv+"."+d.Name.Name, file)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						top(s.Name.Name)
						addMembers(decls, s.Name.Name, s.Type, file)
						addMembers(decls, pkg+"."+s.Name.Name, s.Type, file)
					case *ast.ValueSpec:
						for _, n := range s.Names {
							top(n.Name)
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return decls
}

// receiverName is T for a receiver T, *T or *T[P].
func receiverName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return ""
		}
	}
}

// addMembers records the fields of a struct type and the methods of an
// interface type as Type.Name.
func addMembers(decls declarations, typ string, e ast.Expr, file string) {
	var fields *ast.FieldList
	switch x := e.(type) {
	case *ast.StructType:
		fields = x.Fields
	case *ast.InterfaceType:
		fields = x.Methods
	default:
		return
	}
	for _, f := range fields.List {
		for _, n := range f.Names {
			decls.add(typ+"."+n.Name, file)
		}
		if len(f.Names) == 0 { // an embedded field is named after its type
			if name := receiverName(f.Type); name != "" {
				decls.add(typ+"."+name, file)
			} else if sel, ok := f.Type.(*ast.StarExpr); ok {
				if s, ok := sel.X.(*ast.SelectorExpr); ok {
					decls.add(typ+"."+s.Sel.Name, file)
				}
			} else if s, ok := f.Type.(*ast.SelectorExpr); ok {
				decls.add(typ+"."+s.Sel.Name, file)
			}
		}
	}
}

var (
	backquoted = regexp.MustCompile("`([^`\n]+)`")
	goName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}(\(\))?$`)
	repoPath   = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*/?$`)
	blockStart = regexp.MustCompile(`^\s*([-*]|\d+\.)\s`)
)

// docBlock is a paragraph or list item of the document, with the line it
// starts on.
type docBlock struct {
	line int
	text string
}

func blocks(doc string) []docBlock {
	var out []docBlock
	var cur *docBlock
	for i, l := range strings.Split(doc, "\n") {
		if strings.TrimSpace(l) == "" || strings.HasPrefix(l, "#") {
			cur = nil
			continue
		}
		if cur == nil || blockStart.MatchString(l) {
			out = append(out, docBlock{line: i + 1})
			cur = &out[len(out)-1]
		}
		cur.text += l + "\n"
	}
	return out
}

// isPath tells a repository path (a Go file, or anything with a slash) from
// other code spans such as wire names.
func isPath(s string) bool {
	return repoPath.MatchString(s) && (strings.HasSuffix(s, ".go") || strings.HasSuffix(s, ".md") || strings.Contains(s, "/"))
}

// isGoName tells a Go name from a wire name such as `joined` or
// `conference.log`: a function is written with (), any other name is
// exported.
func isGoName(s string) bool {
	if !goName.MatchString(s) {
		return false
	}
	if strings.HasSuffix(s, "()") {
		return true
	}
	last := s[strings.LastIndex(s, ".")+1:]
	return unicode.IsUpper(rune(last[0]))
}

// checkName reports why name is not declared where the block says, or "".
func (d declarations) checkName(name string, files []string) string {
	name = strings.TrimSuffix(name, "()")
	where := d[name]
	if len(where) == 0 {
		return "is declared nowhere"
	}
	if len(files) == 0 {
		return ""
	}
	if qual, _, ok := strings.Cut(name, "."); ok && !isTypeName(d, qual) {
		return "" // pkg.Name or pkg.Type.Name: found in its package
	}
	for _, f := range where {
		if slices.Contains(files, f) {
			return ""
		}
	}
	return fmt.Sprintf("is declared in %s, not in %s", strings.Join(where, ", "), strings.Join(files, ", "))
}

func isTypeName(d declarations, s string) bool {
	for key := range d {
		if strings.HasPrefix(key, s+".") {
			if _, ok := d[s]; ok {
				return true
			}
		}
	}
	return false
}

func TestArchitectureDocNamesWhatExists(t *testing.T) {
	raw, err := os.ReadFile(architectureDoc)
	if err != nil {
		t.Fatal(err)
	}
	decls := collectDeclarations(t)
	var names, paths int
	for _, b := range blocks(string(raw)) {
		var spans, files []string
		for _, m := range backquoted.FindAllStringSubmatch(b.text, -1) {
			spans = append(spans, m[1])
			if isPath(m[1]) && strings.HasSuffix(m[1], ".go") {
				files = append(files, m[1])
			}
		}
		for _, s := range spans {
			switch {
			case isPath(s):
				paths++
				if _, err := os.Stat(filepath.FromSlash(strings.TrimSuffix(s, "/"))); err != nil {
					t.Errorf("%s:%d: `%s` does not exist", architectureDoc, b.line, s)
				}
			case isGoName(s):
				names++
				if why := decls.checkName(s, files); why != "" {
					t.Errorf("%s:%d: `%s` %s", architectureDoc, b.line, s, why)
				}
			}
		}
	}
	// A parser that matched nothing would pass any document.
	if names < 100 || paths < 40 {
		t.Fatalf("%s: only %d Go names and %d paths checked; the parsing is broken", architectureDoc, names, paths)
	}
}

// The checks must be able to fail: names that do not exist, or exist
// elsewhere than the paragraph says, are reported.
func TestArchitectureDocCheckRefuses(t *testing.T) {
	decls := collectDeclarations(t)
	for _, tc := range []struct {
		name  string
		files []string
		ok    bool
	}{
		{"Service.Join()", []string{"federation/conference.go"}, true},
		{"Service.Join()", []string{"federation/inbox.go"}, false},
		{"Service.NoSuchMethod()", nil, false},
		{"federation.LogWatcher", []string{"internal/node/hooks.go"}, true},
		{"federation.NoSuchType", nil, false},
		{"LogWatcher.LogChanged()", []string{"federation/boundary.go"}, true},
		{"httpapi.StatusRecorder", nil, true},
		{"federation.Service.Join", []string{"federation/api.go"}, true},
		{"federation.Service.NoSuchMethod", nil, false},
		{"media.Service.Join", nil, false},
	} {
		if why := decls.checkName(tc.name, tc.files); (why == "") != tc.ok {
			t.Errorf("checkName(%s, %v) = %q, want ok=%v", tc.name, tc.files, why, tc.ok)
		}
	}
	for s, want := range map[string]bool{"joined": false, "conference.log": false, "trunk.want()": true, "Keyring": true, "media.trunk.offer": false, "federation.Service.Join": true} {
		if isGoName(s) != want {
			t.Errorf("isGoName(%q) = %v, want %v", s, !want, want)
		}
	}
}
