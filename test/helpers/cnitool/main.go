// cnitool for flannelette's tests and demo: runs a network config through the real
// libcni (Debian's 1.1.2), as a container runtime would, so that our plugins meet
// libcni's config loading, name/cniVersion injection, result parsing and result cache.
//
//	cnitool add|check|del <network name> <netns path>
//
// Environment, as upstream cnitool documents it:
//
//	NETCONFPATH  directory of *.conflist / *.conf / *.json (default /etc/cni/net.d)
//	CNI_PATH     plugin search path, ':'-separated
//	CNI_ARGS     "K1=V1;K2=V2" passed to the plugins
//	CAP_ARGS     capability args, a JSON object (e.g. {"portMappings":[...]})
//	CNI_IFNAME   interface in the container (default eth0)
//
// and two of our own, so tests never write under /var/lib/cni or depend on the path:
//
//	CNI_CONTAINERID  container ID (default "cnitool-" + 20 hex chars of sha512(netns path))
//	CNI_CACHE_DIR    libcni's cache directory (default /var/lib/cni)
//
// ADD prints the result JSON on stdout. Any failure exits 1 with one JSON line on stderr,
// {"code":N,"msg":"...","details":"..."}, where N is the plugin's CNI error code, or 0
// when the error did not come from a plugin.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

const usage = "usage: cnitool add|check|del <network name> <netns path>"

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fail(err)
	}
}

func run(verb, network, netnsArg string) error {
	confDir := envOr("NETCONFPATH", "/etc/cni/net.d")
	list, err := libcni.LoadConfList(confDir, network)
	if err != nil {
		return err
	}

	rt, err := runtimeConf(netnsArg)
	if err != nil {
		return err
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), envOr("CNI_CACHE_DIR", libcni.CacheDir), nil)
	ctx := context.Background()

	switch verb {
	case "add":
		result, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			return err
		}
		return result.PrintTo(os.Stdout)
	case "check":
		return cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return cni.DelNetworkList(ctx, list, rt)
	default:
		return fmt.Errorf("unknown command %q; %s", verb, usage)
	}
}

func runtimeConf(netnsArg string) (*libcni.RuntimeConf, error) {
	netns, err := filepath.Abs(netnsArg)
	if err != nil {
		return nil, err
	}
	rt := &libcni.RuntimeConf{
		ContainerID: os.Getenv("CNI_CONTAINERID"),
		NetNS:       netns,
		IfName:      envOr("CNI_IFNAME", "eth0"),
	}
	if rt.ContainerID == "" {
		// Upstream cnitool's ID: stable per namespace path, so DEL finds what ADD made.
		sum := sha512.Sum512([]byte(netns))
		rt.ContainerID = fmt.Sprintf("cnitool-%x", sum[:10])
	}
	if s := os.Getenv("CNI_ARGS"); s != "" {
		for _, pair := range strings.Split(s, ";") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, fmt.Errorf("invalid CNI_ARGS pair %q", pair)
			}
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &rt.CapabilityArgs); err != nil {
			return nil, fmt.Errorf("CAP_ARGS is not a JSON object: %w", err)
		}
	}
	return rt, nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// fail reports err as one JSON line, keeping the plugin's CNI code when libcni wrapped one.
func fail(err error) {
	out := types.Error{Msg: err.Error()}
	var perr *types.Error
	if errors.As(err, &perr) {
		out.Code, out.Details = perr.Code, perr.Details
	}
	line, _ := json.Marshal(out)
	fmt.Fprintf(os.Stderr, "%s\n", line)
	os.Exit(1)
}
