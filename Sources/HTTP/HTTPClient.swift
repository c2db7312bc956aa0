import Foundation
import Core
import CCurl
