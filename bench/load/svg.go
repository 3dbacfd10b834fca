package load

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// SVG geometry.
const (
	svgW      = 960
	svgH      = 560
	svgLeft   = 80
	svgRight  = 30
	panelH    = 190
	topY      = 60  // top of the throughput panel
	bottomY   = 320 // top of the p99 panel
	plotWidth = svgW - svgLeft - svgRight
)

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceStep is a 1, 2 or 5 x 10^k step giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 || math.IsNaN(span) || math.IsInf(span, 0) {
		return 1
	}
	raw := span / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", math.Round(v*1000)/1000)
	}
}

// WriteSVG draws r's timeline: successful requests per second and errors
// per second (top), and p99 latency of the successful requests of each
// second (bottom), the warm-up shaded. A second without any success leaves
// a gap in the p99 line and drops throughput to zero, so a failover shows.
// The SVG is hand-written: no plotting dependencies.
func WriteSVG(w io.Writer, r *Result) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }

	tMax := 1.0
	maxOK, maxP99 := 0.0, 0.0
	warmEnd := 0.0
	for _, s := range r.Timeline {
		tMax = math.Max(tMax, s.T)
		errRate := 0.0
		if s.Intervals > 0 {
			errRate = float64(s.Errors) / s.Intervals
		}
		maxOK = math.Max(maxOK, math.Max(s.OKPerSec, errRate))
		maxP99 = math.Max(maxP99, s.P99)
		if s.Phase == phaseNames[phaseWarmup] {
			warmEnd = s.T
		}
	}
	if maxOK <= 0 {
		maxOK = 1
	}
	if maxP99 <= 0 {
		maxP99 = 1
	}
	okStep := niceStep(maxOK*1.05, 5)
	okTop := math.Ceil(maxOK*1.05/okStep) * okStep
	latStep := niceStep(maxP99*1.05, 5)
	latTop := math.Ceil(maxP99*1.05/latStep) * latStep
	tStep := niceStep(tMax, 10)
	if tStep < 1 {
		tStep = 1
	}

	x := func(t float64) float64 { return svgLeft + t/tMax*plotWidth }
	y := func(v, top float64, panel int) float64 { return float64(panel+panelH) - v/top*panelH }

	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	p(`<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	title := fmt.Sprintf("kmsd load: %s, c=%d, %d endpoint(s); measured %.0f ok/s, p99 %.2f ms, %d errors",
		r.Mix, r.Concurrency, len(r.Endpoints), r.Throughput, r.Latency.P99, r.Errors)
	p(`<text x="%d" y="24" font-size="14" font-weight="bold">%s</text>`+"\n", svgLeft, esc(title))
	p(`<text x="%d" y="42" fill="#555">%s</text>`+"\n", svgLeft, esc("start "+r.Start.UTC().Format("2006-01-02 15:04:05Z")+"; one point per second; grey = warm-up (not measured)"))

	panel := func(top int, label string, yTop, yStep float64) {
		if warmEnd > 0 {
			p(`<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#eeeeee"/>`+"\n", x(0), top, x(warmEnd)-x(0), panelH)
		}
		for v := 0.0; v <= yTop+yStep/2; v += yStep {
			yy := y(v, yTop, top)
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", svgLeft, yy, svgW-svgRight, yy)
			p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-6, yy+4, esc(fmtTick(v)))
		}
		for t := 0.0; t <= tMax+1e-9; t += tStep {
			xx := x(t)
			p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999"/>`+"\n", xx, top+panelH, xx, top+panelH+4)
			p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", xx, top+panelH+17, esc(fmtTick(t)))
		}
		p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#333"/>`+"\n", svgLeft, top, plotWidth, panelH)
		p(`<text x="18" y="%d" transform="rotate(-90 18 %d)" text-anchor="middle">%s</text>`+"\n", top+panelH/2, top+panelH/2, esc(label))
	}
	panel(topY, "requests / s", okTop, okStep)
	panel(bottomY, "p99 latency (ms)", latTop, latStep)
	p(`<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", svgLeft+plotWidth/2, bottomY+panelH+36, esc("seconds since start"))

	mid := func(s Second) float64 { return s.T - s.Intervals/2 }
	// Throughput and errors: one continuous line each.
	var ok, er []string
	for _, s := range r.Timeline {
		errRate := 0.0
		if s.Intervals > 0 {
			errRate = float64(s.Errors) / s.Intervals
		}
		ok = append(ok, fmt.Sprintf("%.1f,%.1f", x(mid(s)), y(s.OKPerSec, okTop, topY)))
		er = append(er, fmt.Sprintf("%.1f,%.1f", x(mid(s)), y(errRate, okTop, topY)))
	}
	if len(ok) > 0 {
		p(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="%s"/>`+"\n", strings.Join(ok, " "))
		p(`<polyline fill="none" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 2" points="%s"/>`+"\n", strings.Join(er, " "))
	}
	// p99: broken where a second had no successful request.
	var seg []string
	flush := func() {
		if len(seg) == 1 {
			xy := strings.Split(seg[0], ",")
			p(`<circle cx="%s" cy="%s" r="2.5" fill="#ff7f0e"/>`+"\n", xy[0], xy[1])
		} else if len(seg) > 1 {
			p(`<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="%s"/>`+"\n", strings.Join(seg, " "))
		}
		seg = seg[:0]
	}
	for _, s := range r.Timeline {
		if s.OK == 0 {
			flush()
			continue
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(mid(s)), y(s.P99, latTop, bottomY)))
	}
	flush()

	// Legend.
	lx, ly := svgW-svgRight-250, topY+14
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#1f77b4" stroke-width="2"/><text x="%d" y="%d">successful requests / s</text>`+"\n", lx, ly, lx+20, ly, lx+26, ly+4)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d62728" stroke-width="1.5" stroke-dasharray="4 2"/><text x="%d" y="%d">errors / s</text>`+"\n", lx, ly+16, lx+20, ly+16, lx+26, ly+20)
	p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#ff7f0e" stroke-width="2"/><text x="%d" y="%d">p99 of the second (gap: no success)</text>`+"\n", lx, bottomY+14, lx+20, bottomY+14, lx+26, bottomY+18)
	p("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
