//! Cluster configuration: the three accepted spellings (big_brother gem format, the older
//! map format, bigbro's own keys), defaults, and validation into one immutable Model.
