package dev

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minimax/platform-hub/internal/devcluster"
	"github.com/minimax/platform-hub/internal/keys"
)

// readmeGateway is the gateway address the README's commands use; the test
// runs its hub on a free port and puts that port in its place.
const readmeGateway = "127.0.0.1:8080"

// TestReadmeWalkthrough runs the shell blocks of the README's "A walk through
// the demo" against `hub dev`, with the real kubectl and curl, one command at
// a time, as a reader pasting them would. A command followed by a "# -> …"
// line (or ending in one) must print that text, "…" standing for anything;
// any other command must succeed, and no command may print a warning the
// README does not show. A command is retried for a while, the way
// a reader runs it again when the hub has not caught up yet, so what the
// README promises "within a second" or "within about ten seconds" must hold
// well within the wait.
func TestReadmeWalkthrough(t *testing.T) {
	steps := readmeSteps(t, "../../README.md", "## A walk through the demo")
	if len(steps) < 20 {
		t.Fatalf("found only %d commands in the README walkthrough; has the section moved?", len(steps))
	}
	binDir, err := devcluster.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(binDir, "kubectl")); err != nil {
		t.Fatalf("kubectl is missing from %s: run make envtest-assets", binDir)
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is missing: run hack/install-test-deps.sh")
	}

	setTestLogger()
	stateDir := t.TempDir()
	hub := startDev(t, stateDir)
	env := append(os.Environ(),
		"KUBECONFIG="+filepath.Join(stateDir, "kubeconfig"),
		"PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))

	for _, step := range steps {
		command := strings.ReplaceAll(step.command, readmeGateway, hub.gatewayAddr)
		if strings.HasPrefix(command, "export KUBECONFIG=") {
			continue // the test sets it
		}
		name, command := splitAssignment(command)
		var out string
		var runErr error
		deadline := time.Now().Add(45 * time.Second)
		for {
			out, runErr = runShell(env, command)
			if step.holds(out, runErr) || time.Now().After(deadline) {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !step.holds(out, runErr) {
			t.Fatalf("README line %d:\n%s\nprinted (%v):\n%s\nexpected: %s", step.line, step.command, runErr, keys.Redact(out), step.describe())
		}
		t.Logf("README line %d: %s\n%s", step.line, firstLine(step.command), keys.Redact(out))
		if name != "" {
			env = append(env, name+"="+strings.TrimSpace(out))
		}
	}
}

// readmeStep is one command of the walkthrough and what it must print.
type readmeStep struct {
	line    int
	command string
	expect  []*regexp.Regexp
	texts   []string
}

// holds tells whether the command's output and result are what the README
// says.
func (s readmeStep) holds(out string, err error) bool {
	if strings.Contains(out, "Warning:") && !strings.Contains(strings.Join(s.texts, " "), "Warning:") {
		return false // a warning the README does not show is a surprise to its reader
	}
	if len(s.expect) == 0 {
		return err == nil
	}
	for _, re := range s.expect {
		if !re.MatchString(out) {
			return false
		}
	}
	return true
}

func (s readmeStep) describe() string {
	if len(s.texts) == 0 {
		return "success"
	}
	return strings.Join(s.texts, " and ")
}

func (s *readmeStep) addExpectation(text string) {
	parts := strings.Split(text, "…")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	s.texts = append(s.texts, text)
	s.expect = append(s.expect, regexp.MustCompile("(?s)"+strings.Join(parts, ".*")))
}

// readmeSteps returns the commands of the sh blocks in the README's section
// titled heading. A command spans lines ending in a backslash and
// here-documents; comment lines are skipped, except "# -> …" lines, which
// give the output of the command before them.
func readmeSteps(t *testing.T, path, heading string) []readmeStep {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := shellLines(strings.Split(string(data), "\n"), heading)
	var steps []readmeStep
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i].text)
		if strings.HasPrefix(trimmed, "#") {
			if text, ok := strings.CutPrefix(trimmed, "# -> "); ok && len(steps) > 0 {
				steps[len(steps)-1].addExpectation(text)
			}
			continue
		}
		step := readmeStep{line: lines[i].number}
		command := []string{lines[i].text}
		for strings.HasSuffix(lines[i].text, `\`) && i+1 < len(lines) {
			i++
			command = append(command, lines[i].text)
		}
		if m := heredoc.FindStringSubmatch(lines[i].text); m != nil {
			for i+1 < len(lines) {
				i++
				command = append(command, lines[i].text)
				if lines[i].text == m[1] {
					break
				}
			}
		}
		if before, text, ok := strings.Cut(command[0], "  # -> "); ok {
			command[0] = before
			step.addExpectation(text)
		}
		step.command = strings.Join(command, "\n")
		steps = append(steps, step)
	}
	return steps
}

type numberedLine struct {
	number int
	text   string
}

// shellLines returns the non-blank lines of the sh blocks in the section
// titled heading (subsections included), with their line numbers.
func shellLines(lines []string, heading string) []numberedLine {
	var out []numberedLine
	inSection, inBlock := false, false
	for i, line := range lines {
		switch {
		case strings.HasPrefix(line, "## "):
			inSection = line == heading
		case !inSection:
		case strings.HasPrefix(line, "```"):
			inBlock = !inBlock && strings.TrimPrefix(line, "```") == "sh"
		case inBlock && strings.TrimSpace(line) != "":
			out = append(out, numberedLine{number: i + 1, text: line})
		}
	}
	return out
}

var (
	heredoc    = regexp.MustCompile(`<<-?'?([A-Z]+)'?`)
	assignment = regexp.MustCompile(`^([A-Z_]+)=\$\((.*)\)$`)
)

// splitAssignment turns `NAME=$(command)` into NAME and command, so that the
// value can be kept for the next commands; anything else is returned as is.
func splitAssignment(command string) (string, string) {
	if m := assignment.FindStringSubmatch(command); m != nil {
		return m[1], m[2]
	}
	return "", command
}

// runShell runs command with bash and returns what it printed on stdout and
// stderr together.
func runShell(env []string, command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", command)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
