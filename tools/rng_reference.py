#!/usr/bin/env python3
"""Independent reference of percep-dist's SeededRNG (SplitMix64-seeded xoshiro256**, Box-Muller
with series log/sin/cos), written from the algorithm descriptions in plain Python integers and
IEEE doubles. Prints the golden values that Tests/PercepCoreTests/GoldenRandom.swift holds, so
the Swift generator is checked against a second implementation on another runtime.

Run: python3 tools/rng_reference.py
"""
import math
import struct

M64 = (1 << 64) - 1


def fnv1a(text):
    if not text:
        return 0
    h = 0xCBF29CE484222325
    for b in text.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


class Rng:
    def __init__(self, seed, stream=""):
        self.x = (seed ^ fnv1a(stream)) & M64
        self.s = [self._splitmix() for _ in range(4)]
        self.spare = None

    def _splitmix(self):
        self.x = (self.x + 0x9E3779B97F4A7C15) & M64
        z = self.x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)

    def next(self):
        s = self.s
        t5 = (s[1] * 5) & M64
        result = ((((t5 << 7) | (t5 >> 57)) & M64) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]
        s[2] ^= t
        s[3] = ((s[3] << 45) | (s[3] >> 19)) & M64
        return result

    def unit(self):
        return (self.next() >> 11) * 2.0 ** -53

    def normal(self):
        if self.spare is not None:
            z, self.spare = self.spare, None
            return z
        u1 = 1 - self.unit()
        u2 = self.unit()
        r = math.sqrt(-2 * det_log(u1))
        sn, cs = sin_cos_turns(u2)
        self.spare = r * sn
        return r * cs


def det_log(x):
    m, e = math.frexp(x)          # x = m * 2**e, m in [0.5, 1)
    m, e = m * 2, e - 1           # Swift's significand in [1, 2)
    if m > 1.4142135623730951:
        m /= 2
        e += 1
    z = (m - 1) / (m + 1)
    z2 = z * z
    term, total, k = z, 0.0, 1.0
    while k < 60:
        total += term / k
        term *= z2
        k += 2
    return 2 * total + e * 0.6931471805599453


def sin_cos_turns(u):
    octant = int(u * 8)
    quarter = (octant + 1) // 2
    q = quarter % 4
    x = (u - quarter * 0.25) * (2 * math.pi)
    x2 = x * x
    s = c = 0.0
    ts, tc, n = x, 1.0, 1.0
    while n < 30:
        s += ts; c += tc
        ts *= -x2 / ((n + 1) * (n + 2))
        tc *= -x2 / (n * (n + 1))
        n += 2
    return [(s, c), (c, -s), (-s, -c), (-c, s)][q]


def bits(d):
    return struct.unpack("<Q", struct.pack("<d", d))[0]


if __name__ == "__main__":
    r = Rng(2021)
    print("bits:", [r.next() for _ in range(3)])
    n = Rng(2021, "normal")
    print("normalBits:", [bits(n.normal()) for _ in range(4)])
