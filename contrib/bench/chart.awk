# make bench: draw the rows of target/bench/report.md whose case starts
# with a number of clients or connections (the concurrency scenario, and
# any other measured at several numbers of connections) as an SVG chart:
# throughput, and p99 latency on a logarithmic scale, by number of
# connections, one line per server and way of driving it.
#
#   awk -f contrib/bench/chart.awk target/bench/report.md > target/bench/chart.svg
#
# A report row: | # | case | server | ops/s | floor | ratio | p50 / p99 / p999 µs | target |
# with ops/s as "133.8k (130.0k–140.0k)" and the latency as "462 / 1042 / 3858".

function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
function kops(s) {   # "133.8k (...)" -> 133800
    s = trim(s); sub(/ .*/, "", s)
    if (s ~ /k$/) { sub(/k$/, "", s); return s * 1000 }
    return s + 0
}
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
function log10(x) { return log(x) / log(10) }

BEGIN { FS = "|"; nseries = 0; nx = 0; rows = 0 }

/^\| *[0-9]+ *\|/ {
    casetext = trim($3)
    if (casetext !~ /^[0-9]+ /) next
    n = casetext; sub(/ .*/, "", n); n += 0
    how = casetext; sub(/^[0-9]+ [a-z]+ */, "", how); sub(/,.*/, "", how)
    gsub(/[()]/, "", how)
    name = "scenario " trim($2) ", " trim($4) (how != "" ? ", " how : "")
    if (!(name in sid)) { sid[name] = ++nseries; sname[nseries] = name }
    if (!(n in xseen)) { xseen[n] = 1; xs[++nx] = n }
    s = sid[name]
    tput[s, n] = kops($5)
    lat = trim($8)
    if (split(lat, parts, "/") >= 2) p99[s, n] = trim(parts[2]) + 0
    rows++
}

END {
    # Numbers of connections in increasing order, evenly spaced.
    for (i = 1; i <= nx; i++) for (j = i + 1; j <= nx; j++) if (xs[j] < xs[i]) { t = xs[i]; xs[i] = xs[j]; xs[j] = t }
    tmax = 0; lmin = 0; lmax = 0
    for (k in tput) if (tput[k] > tmax) tmax = tput[k]
    for (k in p99) if (p99[k] > 0) {
        if (lmin == 0 || p99[k] < lmin) lmin = p99[k]
        if (p99[k] > lmax) lmax = p99[k]
    }
    if (tmax == 0) tmax = 1
    lo = (lmin > 0) ? int(log10(lmin)) : 0; if (lmin > 0 && log10(lmin) < lo) lo--
    hi = (lmax > 0) ? int(log10(lmax)) + 1 : 1; if (hi <= lo) hi = lo + 1

    W = 460; H = 300; L = 70; T = 40; PW = W - L - 20; PH = H - T - 50
    legend = 22 * nseries + 20
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", 2 * W, H + legend
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    if (rows == 0) {
        printf "<text x=\"20\" y=\"40\">No row of the report was measured at several numbers of connections.</text>\n</svg>\n"
        exit 0
    }
    split("#1f77b4 #d62728 #2ca02c #ff7f0e #9467bd #8c564b #e377c2 #7f7f7f #bcbd22 #17becf", color, " ")
    for (panel = 0; panel < 2; panel++) {
        ox = panel * W + L
        title = panel == 0 ? "throughput (operations/s, median)" : "p99 latency (µs, log scale)"
        printf "<text x=\"%d\" y=\"22\" font-size=\"14\">%s</text>\n", ox, title
        printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ox, T + PH, ox + PW, T + PH
        printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", ox, T, ox, T + PH
        for (i = 1; i <= nx; i++) {
            x = ox + (nx == 1 ? PW / 2 : (i - 1) * PW / (nx - 1))
            printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", x, T + PH + 16, xs[i]
        }
        printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">connections</text>\n", ox + PW / 2, T + PH + 34
        if (panel == 0) {
            for (g = 0; g <= 4; g++) {
                v = tmax * g / 4; y = T + PH - PH * g / 4
                printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ox, y, ox + PW, y
                printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0fk</text>\n", ox - 6, y + 4, v / 1000
            }
        } else {
            for (g = lo; g <= hi; g++) {
                y = T + PH - PH * (g - lo) / (hi - lo)
                printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ox, y, ox + PW, y
                printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ox - 6, y + 4, 10 ^ g
            }
        }
        for (s = 1; s <= nseries; s++) {
            pts = ""; dots = ""
            for (i = 1; i <= nx; i++) {
                n = xs[i]
                x = ox + (nx == 1 ? PW / 2 : (i - 1) * PW / (nx - 1))
                if (panel == 0) {
                    if (!((s, n) in tput)) continue
                    y = T + PH - PH * tput[s, n] / tmax
                } else {
                    if (!((s, n) in p99) || p99[s, n] <= 0) continue
                    y = T + PH - PH * (log10(p99[s, n]) - lo) / (hi - lo)
                }
                pts = pts sprintf("%.1f,%.1f ", x, y)
                dots = dots sprintf("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", x, y, color[(s - 1) % 10 + 1])
            }
            if (pts != "") printf "<polyline class=\"series\" data-series=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n%s", esc(sname[s]), color[(s - 1) % 10 + 1], trim(pts), dots
        }
    }
    for (s = 1; s <= nseries; s++) {
        y = H + 10 + 22 * (s - 1)
        printf "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>\n", L, y, color[(s - 1) % 10 + 1]
        printf "<text x=\"%d\" y=\"%d\">%s</text>\n", L + 22, y + 12, esc(sname[s])
    }
    printf "</svg>\n"
}
