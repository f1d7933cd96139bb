#!/bin/sh
# Prints "instructions estimated_cycles" summed over the callgrind output
# files given (the public formula: (A-M1) + 5(M1-ML) + 35 ML).
awk '/^events:/ { n = split($0, ev, " ") }
     /^summary:/ { for (i = 2; i <= NF; i++) s[ev[i]] += $i }
     END {
       a = s["Ir"] + s["Dr"] + s["Dw"]; m1 = s["I1mr"] + s["D1mr"] + s["D1mw"]; ml = s["ILmr"] + s["DLmr"] + s["DLmw"]
       printf "%d %d\n", s["Ir"], (a - m1) + 5 * (m1 - ml) + 35 * ml
     }' "$@"
