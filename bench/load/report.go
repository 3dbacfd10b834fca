package load

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
)

// WriteReport prints r as text tables.
func WriteReport(w io.Writer, r *Result) {
	fmt.Fprintf(w, "kmsd load: client %s, mix %s, concurrency %d, warm-up %s, measured %.2fs", r.Client, r.Mix, r.Concurrency, r.Warmup, r.MeasuredSeconds)
	if r.Interrupted {
		fmt.Fprint(w, " (interrupted)")
	}
	fmt.Fprintf(w, "\nendpoints: %v\nkey: %s", r.Endpoints, r.KeyID)
	if r.KeyCreated {
		fmt.Fprint(w, " (created for this run)")
	}
	fmt.Fprintln(w)
	batch := r.BatchSize > 0
	if batch {
		fmt.Fprintf(w, "batch ops: %d items per request; items = data keys, ciphertexts or plaintexts returned\n", r.BatchSize)
	}
	if r.MeasuredSeconds == 0 {
		fmt.Fprintln(w, "nothing measured (stopped during warm-up)")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	itemCols := ""
	if batch {
		itemCols = "items\titem errors\titems/s\t"
	}
	fmt.Fprintln(tw, "op\tok\terrors\tok/s\t"+itemCols+"mean ms\tp50 ms\tp95 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	ops := make([]string, 0, len(r.Ops))
	for op := range r.Ops {
		ops = append(ops, op)
	}
	sort.Strings(ops)
	row := func(name string, ok, errs uint64, tput float64, items, itemErrs uint64, itemsPS float64, l Latency) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t", name, ok, errs, tput)
		if batch {
			fmt.Fprintf(tw, "%d\t%d\t%.1f\t", items, itemErrs, itemsPS)
		}
		fmt.Fprintf(tw, "%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", l.Mean, l.P50, l.P95, l.P99, l.P999, l.Max)
	}
	var itemErrs uint64
	itemTypes := map[string]uint64{}
	for _, op := range ops {
		o := r.Ops[op]
		row(op, o.OK, o.Errors, o.Throughput, o.Items, o.ItemErrors, o.ItemsPerSecond, o.Latency)
		itemErrs += o.ItemErrors
		for k, n := range o.ItemErrorsByType {
			itemTypes[k] += n
		}
	}
	row("ALL", r.OK, r.Errors, r.Throughput, r.Items, itemErrs, r.ItemsPerSecond, r.Latency)
	tw.Flush()
	if len(itemTypes) > 0 {
		fmt.Fprintln(w, "\nitem errors by type (items that failed alone in answered batch requests):")
		for k, n := range itemTypes {
			fmt.Fprintf(w, "  %-24s %8d\n", k, n)
		}
	}

	if len(r.ErrorsByType) > 0 {
		fmt.Fprintln(w, "\nerrors by type:")
		types := make([]string, 0, len(r.ErrorsByType))
		for k := range r.ErrorsByType {
			types = append(types, k)
		}
		sort.Slice(types, func(i, j int) bool { return r.ErrorsByType[types[i]] > r.ErrorsByType[types[j]] })
		for _, k := range types {
			fmt.Fprintf(w, "  %-24s %8d   e.g. %s\n", k, r.ErrorsByType[k], r.ErrorExamples[k])
		}
	} else {
		fmt.Fprintln(w, "\nerrors: none")
	}
	if len(r.PerEndpoint) > 1 {
		fmt.Fprintln(w, "\nper endpoint:")
		for _, e := range r.PerEndpoint {
			fmt.Fprintf(w, "  %-32s ok %8d  errors %6d\n", e.Endpoint, e.OK, e.Errors)
		}
	}

	fmt.Fprintln(w)
	sc := r.ServerCPU
	if sc.Known {
		fmt.Fprintf(w, "server CPU: %.2f s over the window = %.2f cores; %.1f µs CPU per request (all nodes, all ops)\n", sc.Seconds, sc.Cores, sc.MicrosPerOp)
		if batch && sc.MicrosPerItm > 0 {
			fmt.Fprintf(w, "server CPU per item: %.2f µs\n", sc.MicrosPerItm)
		}
	} else {
		fmt.Fprintf(w, "server CPU: unknown (%s)\n", sc.UnknownCause)
	}
	for _, n := range sc.Nodes {
		if n.Error != "" {
			fmt.Fprintf(w, "  %-32s node %-12s unknown: %s\n", n.Endpoint, n.NodeID, n.Error)
		} else {
			fmt.Fprintf(w, "  %-32s node %-12s %.2f s = %.2f cores\n", n.Endpoint, n.NodeID, n.Seconds, n.Cores)
		}
	}
	if c := r.ClientCPU; c.Known {
		fmt.Fprintf(w, "client CPU: %.2f s = %.2f cores; %.1f µs CPU per request\n", c.Seconds, c.Cores, c.MicrosPerOp)
	} else {
		fmt.Fprintln(w, "client CPU: unknown")
	}
}
