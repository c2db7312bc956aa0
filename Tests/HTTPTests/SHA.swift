import Foundation
import Crypto

func sha256hex(_ d: Data) -> String { Digest.sha256(d).hexString }

final class IncrementalSHA {
    let h = Hasher(.sha256)
    func update(_ d: Data) { h.update(d) }
    var hex: String { h.finalize().hexString }
}
