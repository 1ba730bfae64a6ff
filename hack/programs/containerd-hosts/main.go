// Command containerd-hosts reads a certs.d folder the way containerd does when it pulls an
// image, and prints what containerd would use for each registry named on the command line, as
// JSON: the hosts in the order they are tried (mirrors first, the registry itself last), their
// capabilities and whether a CA was loaded for them.
//
// containerd logs a hosts.toml it cannot decode and falls back to the registry itself, so a
// broken file only shows on the node as pulls that skip the mirrors. This tool fails instead:
// on an error containerd logs, on a key containerd does not read (checked against the keys of
// its hosts file, below), and on a CA file it cannot load.
//
// Usage: containerd-hosts CERTS_D REGISTRY...
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/log"
	"github.com/pelletier/go-toml/v2"
	"github.com/sirupsen/logrus"
)

// The keys containerd reads from a hosts.toml (its hostFileConfig, at the top level and
// under [host."..."]); a file with any other key is refused here.
type hostKeys struct {
	Capabilities []string       `toml:"capabilities"`
	CA           any            `toml:"ca"`
	Client       any            `toml:"client"`
	SkipVerify   *bool          `toml:"skip_verify"`
	Header       map[string]any `toml:"header"`
	OverridePath bool           `toml:"override_path"`
	DialTimeout  string         `toml:"dial_timeout"`
}

type hostsFile struct {
	hostKeys
	Server string              `toml:"server"`
	Host   map[string]hostKeys `toml:"host"`
}

type host struct {
	URL          string   `json:"url"`
	Capabilities []string `json:"capabilities"`
	CA           bool     `json:"ca"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "containerd-hosts: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 3 {
		fail("usage: containerd-hosts CERTS_D REGISTRY...")
	}
	root := os.Args[1]
	var logs bytes.Buffer
	logger := logrus.New()
	logger.SetOutput(io.MultiWriter(&logs, os.Stderr))
	ctx := log.WithLogger(context.Background(), logrus.NewEntry(logger))
	resolve := config.ConfigureHosts(ctx, config.HostOptions{HostDir: config.HostDirFromRoot(root)})

	out := map[string][]host{}
	for _, registry := range os.Args[2:] {
		dir, err := config.HostDirFromRoot(root)(registry)
		if err != nil {
			fail("%s: %v", registry, err)
		}
		if dir != "" {
			b, err := os.ReadFile(filepath.Join(dir, "hosts.toml"))
			if err != nil {
				fail("%s: %v", registry, err)
			}
			var strict hostsFile
			decoder := toml.NewDecoder(bytes.NewReader(b))
			decoder.DisallowUnknownFields()
			if err := decoder.Decode(&strict); err != nil {
				fail("%s: %s: a key containerd does not read, or a wrong type: %v", registry, filepath.Join(dir, "hosts.toml"), err)
			}
		}
		hosts, err := resolve(registry)
		if err != nil {
			fail("%s: %v", registry, err)
		}
		if logs.Len() > 0 {
			fail("%s: containerd logged: %s", registry, logs.String())
		}
		for _, h := range hosts {
			var caps []string
			for _, c := range []struct {
				flag docker.HostCapabilities
				name string
			}{{docker.HostCapabilityPull, "pull"}, {docker.HostCapabilityResolve, "resolve"}, {docker.HostCapabilityPush, "push"}} {
				if h.Capabilities.Has(c.flag) {
					caps = append(caps, c.name)
				}
			}
			ca := false
			if tr, ok := h.Client.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
				ca = tr.TLSClientConfig.RootCAs != nil
			}
			out[registry] = append(out[registry], host{URL: h.Scheme + "://" + h.Host + h.Path, Capabilities: caps, CA: ca})
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		fail("%v", err)
	}
}
