// Package nsqjs runs nsqjs — NSQ's JavaScript client, a second, independent
// implementation of the protocol — against our built nsqd and nsqlookupd:
// PUB, MPUB and DPUB from its Writer, discovery through lookupd's /lookup,
// FIN, REQ and TOUCH from its Reader, with no compression, deflate and
// snappy (spec A-01..A-03 as another client speaks them, D-TCP, D-HTTP-21).
//
// nsqjs comes from the npm registry as pinned, with integrity hashes, by
// testdata/package-lock.json (`npm ci`); none of its code is in this
// repository. The test needs node and npm (.ci/run installs them if absent).
package nsqjs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ournsq/nsq/test/internal/daemons"
)

func TestMain(m *testing.M) { os.Exit(daemons.Run(m)) }

const waitLimit = 30 * time.Second

// installNSQJS copies the probe (package.json, its lock file, client.js) to
// dir and installs nsqjs there exactly as locked.
func installNSQJS(t *testing.T, dir string) {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: this test runs nsqjs with Node.js (.ci/run installs it)", tool)
		}
	}
	for _, f := range []string{"package.json", "package-lock.json", "client.js"} {
		b, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci (nsqjs as testdata/package-lock.json pins it): %v\n%s", err, out)
	}
	t.Logf("installed nsqjs in %.1fs", time.Since(start).Seconds())
}

type clientStats struct {
	UserAgent     string `json:"user_agent"`
	Deflate       bool   `json:"deflate"`
	Snappy        bool   `json:"snappy"`
	FinishCount   int64  `json:"finish_count"`
	RequeueCount  int64  `json:"requeue_count"`
	InFlightCount int64  `json:"in_flight_count"`
	PubCounts     []struct {
		Topic string `json:"topic"`
		Count int64  `json:"count"`
	} `json:"pub_counts"`
}

type stats struct {
	Topics []struct {
		Name     string `json:"topic_name"`
		Messages int64  `json:"message_count"`
		Channels []struct {
			Name     string        `json:"channel_name"`
			Depth    int64         `json:"depth"`
			InFlight int64         `json:"in_flight_count"`
			Deferred int64         `json:"deferred_count"`
			Messages int64         `json:"message_count"`
			Requeued int64         `json:"requeue_count"`
			Clients  []clientStats `json:"clients"`
		} `json:"channels"`
	} `json:"topics"`
	Producers []clientStats `json:"producers"`
}

// httpClient bounds every request the test makes.
var httpClient = &http.Client{Timeout: 5 * time.Second}

func getStats(t *testing.T, httpAddr, topic string) stats {
	t.Helper()
	resp, err := httpClient.Get("http://" + httpAddr + "/stats?format=json&topic=" + topic)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s stats
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatalf("decoding /stats: %v", err)
	}
	return s
}

// report is what client.js prints at the end.
type report struct {
	Errors     []string `json:"errors"`
	Deliveries []struct {
		Body     string `json:"body"`
		Attempts int    `json:"attempts"`
	} `json:"deliveries"`
	DeferredAfterMs *int64 `json:"deferredAfterMs"`
}

func TestNSQJS(t *testing.T) {
	dir := t.TempDir()
	installNSQJS(t, dir)
	bins := daemons.Build(t, daemons.RaceEnabled)

	addrs := daemons.FreeAddrs(t, 4)
	lTCP, lHTTP, nTCP, nHTTP := addrs[0], addrs[1], addrs[2], addrs[3]
	lp := daemons.Start(t, daemons.Cmd{Name: "nsqlookupd", Bin: bins.NSQLookupd,
		Args: []string{"--tcp-address=" + lTCP, "--http-address=" + lHTTP, "--broadcast-address=127.0.0.1"}})
	lp.WaitPing(t, lHTTP, waitLimit)
	defer lp.Stop(t, syscall.SIGTERM, waitLimit)
	np := daemons.Start(t, daemons.Cmd{Name: "nsqd", Bin: bins.NSQD, Args: []string{"--data-path=" + t.TempDir(),
		"--tcp-address=" + nTCP, "--http-address=" + nHTTP, "--lookupd-tcp-address=" + lTCP,
		"--broadcast-address=127.0.0.1"}})
	np.WaitPing(t, nHTTP, waitLimit)
	defer np.Stop(t, syscall.SIGTERM, waitLimit)

	want := []string{"dpub", "pub"}
	for i := 0; i < 10; i++ {
		want = append(want, fmt.Sprintf("mpub-%d", i))
	}
	sort.Strings(want)

	for _, compression := range []string{"none", "deflate", "snappy"} {
		t.Run(compression, func(t *testing.T) {
			topic := "js_" + compression
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "client.js")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "NSQD_TCP="+nTCP, "LOOKUPD_HTTP="+lHTTP, "TOPIC="+topic,
				"COMPRESSION="+compression, fmt.Sprintf("LIMIT_MS=%d", (waitLimit-5*time.Second).Milliseconds()))
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(stdout)
			if !lines.Scan() || lines.Text() != "consumed" {
				cmd.Wait()
				t.Fatalf("client.js: %q instead of \"consumed\" (%v)\nstderr:\n%s", lines.Text(), ctx.Err(), stderr.String())
			}

			// still connected: nsqd's view of both nsqjs clients
			s := getStats(t, nHTTP, topic)
			if len(s.Topics) != 1 || len(s.Topics[0].Channels) != 1 {
				t.Fatalf("/stats for %s: %+v, want the topic with channel js", topic, s)
			}
			ch := s.Topics[0].Channels[0]
			if s.Topics[0].Messages != 12 || ch.Messages != 12 || ch.Depth != 0 || ch.InFlight != 0 || ch.Deferred != 0 || ch.Requeued != 1 {
				t.Errorf("/stats channel js: %+v, want 12 messages, none left, one requeued", ch)
			}
			if len(ch.Clients) != 1 || len(s.Producers) != 1 {
				t.Fatalf("/stats: consumers %+v, producers %+v: want one nsqjs client each", ch.Clients, s.Producers)
			}
			for role, c := range map[string]clientStats{"Reader": ch.Clients[0], "Writer": s.Producers[0]} {
				if !strings.HasPrefix(c.UserAgent, "nsqjs/") || c.Deflate != (compression == "deflate") || c.Snappy != (compression == "snappy") {
					t.Errorf("%s as nsqd sees it: %+v, want user_agent nsqjs/…, compression %s granted", role, c, compression)
				}
			}
			if r := ch.Clients[0]; r.FinishCount != 12 || r.RequeueCount != 1 || r.InFlightCount != 0 {
				t.Errorf("Reader: %+v, want 12 FIN, 1 REQ, none in flight", r)
			}
			if p := s.Producers[0]; len(p.PubCounts) != 1 || p.PubCounts[0].Topic != topic || p.PubCounts[0].Count != 12 {
				t.Errorf("Writer pub_counts %+v, want %s: 12 (PUB 1 + MPUB 10 + DPUB 1)", p.PubCounts, topic)
			}

			io.WriteString(stdin, "bye\n")
			rest, _ := io.ReadAll(stdout)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("client.js: %v (%v)\nstdout: %s\nstderr:\n%s", err, ctx.Err(), rest, stderr.String())
			}
			var r report
			if err := json.Unmarshal(rest, &r); err != nil {
				t.Fatalf("client.js report %q: %v", rest, err)
			}
			if len(r.Errors) > 0 {
				t.Errorf("nsqjs reported errors: %q", r.Errors)
			}
			got := []string{}
			requeued := []int{}
			for _, d := range r.Deliveries {
				if d.Body == "mpub-3" {
					requeued = append(requeued, d.Attempts)
					if d.Attempts == 1 {
						continue
					}
				} else if d.Attempts != 1 {
					t.Errorf("%s delivered with attempts %d, want 1", d.Body, d.Attempts)
				}
				got = append(got, d.Body)
			}
			sort.Strings(got)
			if !slices.Equal(got, want) {
				t.Errorf("nsqjs finished %q, want each of %q once", got, want)
			}
			if !slices.Equal(requeued, []int{1, 2}) {
				t.Errorf("mpub-3 delivered with attempts %v, want 1 (requeued) then 2", requeued)
			}
			if r.DeferredAfterMs == nil || *r.DeferredAfterMs < 300 {
				t.Errorf("DPUB of 300 ms delivered after %v ms", r.DeferredAfterMs)
			}
		})
	}
}
