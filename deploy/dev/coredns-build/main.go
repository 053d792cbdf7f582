// CoreDNS with only the plugins the dev cluster's DNS needs (see deploy/dev/build.sh).
//
// Upstream's main (coredns.go) imports core/plugin, which links every plugin: the cloud DNS
// providers, etcd, tracing and the rest, several times the compile of this list. The
// directives below must keep upstream's order from plugin.cfg: CoreDNS runs plugins in the
// order of dnsserver.Directives, not in the order a Corefile names them.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

var directives = []string{"bind", "ready", "errors", "log", "cache", "kubernetes"}

func init() {
	dnsserver.Directives = directives
}

func main() {
	coremain.Run()
}
