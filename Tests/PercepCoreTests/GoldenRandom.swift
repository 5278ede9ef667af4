/// Values printed by the independent Python implementation `tools/rng_reference.py` for
/// SeededRNG(seed: 2021): the Swift generator must reproduce them bit for bit.
enum GoldenRandom {
    static let bits: [UInt64] = [17732381211534138305, 6363412185759774900, 9318976926791017442]
    static let normalBits: [UInt64] = [13833414859060850805, 4603292286232195931, 13832915669002395464, 13832147824003464233]
}
