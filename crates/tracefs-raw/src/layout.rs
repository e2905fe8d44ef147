//! The two texts a raw reader needs: `events/header_page` (where the page's time stamp, commit
//! word and data are) and an event's `format` (name, id, fields).

/// Where the parts of a page are, from `events/header_page`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageLayout {
    /// Offset and size of `timestamp`.
    pub timestamp: (usize, usize),
    /// Offset and size of `commit`.
    pub commit: (usize, usize),
    /// Offset and size of `data`: the page size is their sum.
    pub data: (usize, usize),
}

impl PageLayout {
    /// Total page size (`data` offset + size).
    pub fn page_size(&self) -> usize {
        self.data.0 + self.data.1
    }

    /// Parses `events/header_page`; `None` when a needed field is missing.
    pub fn parse(text: &str) -> Option<PageLayout> {
        let mut timestamp = None;
        let mut commit = None;
        let mut data = None;
        for line in text.lines() {
            let Some(def) = FieldDef::parse(line) else {
                continue;
            };
            let place = Some((def.offset, def.size));
            match def.name.as_str() {
                "timestamp" => timestamp = place,
                "commit" => commit = place,
                "data" => data = place,
                _ => {}
            }
        }
        Some(PageLayout {
            timestamp: timestamp?,
            commit: commit?,
            data: data?,
        })
    }
}

/// One `field:` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDef {
    /// The declaration before the name (`unsigned short`, `__data_loc char[]`).
    pub ty: String,
    /// Field name, without `[N]`.
    pub name: String,
    /// Offset in the payload.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// `signed:1`.
    pub signed: bool,
    /// Declared as an array (`name[N]`).
    pub array: bool,
}

impl FieldDef {
    /// Parses `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;`.
    pub fn parse(line: &str) -> Option<FieldDef> {
        let rest = line.trim().strip_prefix("field:")?;
        let mut parts = rest.split(';').map(str::trim);
        let decl = parts.next()?;
        let mut number =
            |key: &str| -> Option<usize> { parts.next()?.strip_prefix(key)?.trim().parse().ok() };
        let offset = number("offset:")?;
        let size = number("size:")?;
        let signed = number("signed:")? != 0;
        let (ty, name) = decl.rsplit_once(' ')?;
        let array = name.contains('[');
        let name = name.split('[').next()?.to_string();
        // `__data_loc char[] name` keeps its brackets on the type.
        Some(FieldDef {
            ty: ty.trim().to_string(),
            name,
            offset,
            size,
            signed,
            array,
        })
    }

    /// True for `__data_loc`/`__rel_loc` fields (a u32 locating data after the fixed part).
    pub fn is_dynamic(&self) -> bool {
        self.ty.starts_with("__data_loc") || self.ty.starts_with("__rel_loc")
    }

    /// True when the field holds text: a char array, fixed or dynamic.
    pub fn is_text(&self) -> bool {
        self.ty.contains("char")
            && (self.array || self.ty.contains("[]"))
            && !self.ty.contains("unsigned char")
    }
}

/// An event's `format` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFormat {
    /// `name:`.
    pub name: String,
    /// `ID:`.
    pub id: u16,
    /// Every field, common ones first.
    pub fields: Vec<FieldDef>,
}

impl EventFormat {
    /// Parses a `format` file; `None` without a name or id.
    pub fn parse(text: &str) -> Option<EventFormat> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        for line in text.lines() {
            if let Some(n) = line.strip_prefix("name: ") {
                name = Some(n.trim().to_string());
            } else if let Some(n) = line.strip_prefix("ID: ") {
                id = n.trim().parse().ok();
            } else if let Some(f) = FieldDef::parse(line) {
                fields.push(f);
            }
        }
        Some(EventFormat {
            name: name?,
            id: id?,
            fields,
        })
    }
}
