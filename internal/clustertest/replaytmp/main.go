package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tokengw/tokengw/internal/clustertest"
)

func main() {
	f, _ := os.Open(os.Args[1])
	var ops []clustertest.Op
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var o clustertest.Op
		json.Unmarshal(sc.Bytes(), &o)
		ops = append(ops, o)
	}
	var phases []clustertest.Phase
	json.Unmarshal([]byte(os.Args[2]), &phases)
	clients := map[string]clustertest.Client{}
	for _, o := range ops {
		ttl := 10 * time.Minute
		if strings.HasPrefix(o.Client, "short") {
			ttl = 4 * time.Second
		}
		clients[o.Client] = clustertest.Client{ID: o.Client, TTL: ttl, Rotated: strings.HasPrefix(o.Client, "rotated")}
	}
	p := clustertest.Params{MaxElapsedFraction: 0.5, MinRemaining: time.Second, LocalTTL: 2 * time.Second, ClientRefresh: time.Second, Slack: 1500 * time.Millisecond}
	rep := clustertest.Check(ops, phases, clients, p)
	rep.Print(func(f string, a ...any) { fmt.Printf(f+"\n", a...) })
	want := os.Args[3]
	n := 0
	for _, v := range rep.Violations {
		if strings.Contains(v, want) && n < 8 {
			fmt.Println(v)
			n++
		}
	}
}
