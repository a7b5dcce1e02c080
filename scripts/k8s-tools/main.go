// Command etcd is the etcd server, built from the etcd server module so that
// mailsync's operator tests can run against a real etcd (see ../k8s-test-env).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
