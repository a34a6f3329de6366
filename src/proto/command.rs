/// The operations of the protocol, with their wire values: the original's
/// four, and TAKE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Command {
    /// Store a session (`u32 timeout_msecs | u32 id_len | id | data`).
    Add = 0,
    /// Fetch a session by id.
    Get = 1,
    /// Delete a session by id.
    Remove = 2,
    /// Ask whether a session exists.
    Have = 3,
    /// Fetch a session by id and delete it in the same step: a GET's reply,
    /// and no later request finds the session. The original's server knows
    /// no such operation and closes the connection on it.
    Take = 4,
}

impl Command {
    /// All commands, in wire order.
    pub const ALL: [Command; 5] = [
        Command::Add,
        Command::Get,
        Command::Remove,
        Command::Have,
        Command::Take,
    ];

    /// The command for a wire byte, if it names one.
    pub fn from_wire(byte: u8) -> Option<Command> {
        Command::ALL.get(usize::from(byte)).copied()
    }

    /// The byte that names this command on the wire.
    pub fn wire(self) -> u8 {
        self as u8
    }
}

/// One-byte status codes carried by replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Status {
    /// Success (`DC_ERR_OK`); for REMOVE and HAVE: found.
    Ok = 0x00,
    /// Not found (`DC_ERR_NOTOK`); for GET and TAKE the whole reply.
    NotFound = 0x01,
    /// The proxy lost its server mid-request (`DC_ERR_DISCONNECTED`).
    Disconnected = 0x02,
    /// ADD: the id length runs into or past the end of the payload.
    AddCorrupt = 0x64,
    /// ADD: a session with this id is already stored.
    AddMatchingSession = 0x65,
    /// ADD: the timeout exceeds seven days.
    AddTimeoutRange = 0x66,
    /// ADD: the id is empty or longer than 64 bytes.
    AddIdRange = 0x67,
    /// ADD: the session data is empty or too long (not reachable on the wire).
    AddDataRange = 0x68,
}

impl Status {
    /// The status byte on the wire.
    pub fn wire(self) -> u8 {
        self as u8
    }
}

impl Status {
    /// The status a reply byte names, if it names one.
    pub fn from_wire(byte: u8) -> Option<Status> {
        Some(match byte {
            0x00 => Status::Ok,
            0x01 => Status::NotFound,
            0x02 => Status::Disconnected,
            0x64 => Status::AddCorrupt,
            0x65 => Status::AddMatchingSession,
            0x66 => Status::AddTimeoutRange,
            0x67 => Status::AddIdRange,
            0x68 => Status::AddDataRange,
            _ => return None,
        })
    }
}
