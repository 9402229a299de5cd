//! DICOM test helpers: the real files shipped in the pydicom wheel (in the
//! test venv that `scripts/test` makes), dcmtk's `echoscu`/`storescu`, and a
//! dicom-rs SCU for what dcmtk cannot be made to send (aborts, lies).

use super::TestServer;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::{
    EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
};
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::{ClientAssociation, ClientAssociationOptions, Pdu};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// `pydicom/data/test_files` in the test venv.
pub fn test_files() -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let found = std::fs::read_dir(&venv).ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("site-packages/pydicom/data/test_files"))
            .find(|p| p.is_dir())
    });
    found.unwrap_or_else(|| {
        panic!(
            "pydicom's test files are not in {}: run scripts/test once (it makes the venv)",
            venv.display()
        )
    })
}

/// What a dcmtk tool did.
#[derive(Debug)]
pub struct Tool {
    pub ok: bool,
    pub log: String,
}

fn run(program: &str, args: &[String]) -> Tool {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} (Debian's dcmtk) is needed: {e}"));
    Tool {
        ok: out.status.success(),
        log: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn host_port(addr: &str) -> (String, String) {
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    (host.to_owned(), port.to_owned())
}

impl TestServer {
    pub fn dicom_addr(&self) -> &str {
        self.dicom
            .as_deref()
            .expect("start the server with --dicom-listen")
    }

    /// `echoscu -aet calling -aec called`.
    pub fn echoscu(&self, called: &str, calling: &str) -> Tool {
        let (host, port) = host_port(self.dicom_addr());
        run(
            "echoscu",
            &[
                "-aet".into(),
                calling.into(),
                "-aec".into(),
                called.into(),
                host,
                port,
            ],
        )
    }

    /// `storescu -aec called [args] files…` (folders need `+sd`).
    pub fn storescu(&self, called: &str, args: &[&str], files: &[PathBuf]) -> Tool {
        let (host, port) = host_port(self.dicom_addr());
        let mut all: Vec<String> = vec!["-aec".into(), called.into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all.extend([host, port]);
        all.extend(files.iter().map(|f| f.display().to_string()));
        run("storescu", &all)
    }

    /// A dicom-rs association proposing `contexts` (abstract syntax, transfer syntax).
    pub fn associate(
        &self,
        called: &str,
        contexts: &[(&str, &str)],
    ) -> ClientAssociation<std::net::TcpStream> {
        let mut options = ClientAssociationOptions::new()
            .calling_ae_title("RUST-SCU")
            .called_ae_title(called)
            .read_timeout(std::time::Duration::from_secs(30));
        for (abstract_syntax, ts) in contexts {
            options = options.with_presentation_context(*abstract_syntax, vec![*ts]);
        }
        options.establish(self.dicom_addr()).expect("association")
    }
}

/// dcmtk's own receiver, keeping data sets exactly as they arrive
/// (`storescp --bit-preserving`): the reference for "what was sent".
pub struct ReferenceScp {
    child: std::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl ReferenceScp {
    pub fn start() -> ReferenceScp {
        let dir = tempfile::TempDir::new().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("storescp")
            .args(["--bit-preserving", "-od"])
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("storescp (Debian's dcmtk)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "storescp did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        ReferenceScp { child, port, dir }
    }

    pub fn storescu(&self, args: &[&str], files: &[PathBuf]) -> Tool {
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["127.0.0.1".into(), self.port.to_string()]);
        all.extend(files.iter().map(|f| f.display().to_string()));
        run("storescu", &all)
    }

    /// The Part 10 file storescp kept for `sop` (named `MODALITY.sop`).
    pub fn received(&self, sop: &str) -> Vec<u8> {
        let found = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&format!(".{sop}"))
            })
            .unwrap_or_else(|| panic!("storescp kept no {sop}"));
        std::fs::read(found.path()).unwrap()
    }
}

impl Drop for ReferenceScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The organization's audit events with `action`, newest first, once there
/// are at least `at_least` (the receiver's events are committed in batches,
/// just after its answers).
pub fn audit_events(
    server: &TestServer,
    org: &super::Org,
    action: &str,
    at_least: usize,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = server.admin_output(&[
            "audit",
            "--org",
            &org.org_id,
            "--action",
            action,
            "--limit",
            "1000",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events: Vec<serde_json::Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if events.len() >= at_least || std::time::Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// The Accept header of a WADO-RS retrieve of stored instances.
pub const ACCEPT_DICOM: &str = r#"multipart/related; type="application/dicom""#;

impl TestServer {
    /// WADO-RS retrieve of one instance: the status, and on 200 the one
    /// part's bytes (a Part 10 file); else the body.
    pub async fn retrieve_instance(
        &self,
        org: &super::Org,
        study: &str,
        series: &str,
        sop: &str,
        accept: &str,
    ) -> (u16, Vec<u8>) {
        let response = reqwest::Client::new()
            .get(format!(
                "{}/dicomweb/studies/{study}/series/{series}/instances/{sop}",
                self.base
            ))
            .bearer_auth(&org.api_key)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.bytes().await.unwrap().to_vec();
        if status != 200 {
            return (status, body);
        }
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .expect("a boundary")
            .trim_matches('"');
        assert!(body.starts_with(format!("--{boundary}\r\n").as_bytes()));
        let start = body.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let end = body.len() - format!("\r\n--{boundary}--\r\n").len();
        (status, body[start..end].to_vec())
    }
}

/// Every file under `folder` (none when it does not exist), sorted.
pub fn files_under(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_owned()];
    while let Some(f) = folders.pop() {
        for entry in std::fs::read_dir(f).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                folders.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

/// The Study, Series and SOP Instance UIDs of the Part 10 file at `path`.
pub fn instance_uids(path: &Path) -> (String, String, String) {
    let obj = dicom_object::open_file(path).unwrap();
    let uid = |tag| {
        obj.element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_owned()
    };
    (
        uid(tags::STUDY_INSTANCE_UID),
        uid(tags::SERIES_INSTANCE_UID),
        uid(tags::SOP_INSTANCE_UID),
    )
}

/// A data set's bytes in Part 10 file `bytes` (what follows the file meta).
pub fn data_set_of(bytes: &[u8]) -> &[u8] {
    assert_eq!(&bytes[128..132], b"DICM", "a Part 10 file");
    let group = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    &bytes[144 + group..]
}

/// A small CT data set with the given UIDs (None leaves one out).
pub fn ct_data_set(
    study: Option<&str>,
    series: Option<&str>,
    sop: Option<&str>,
    pixels: usize,
) -> InMemDicomObject {
    let mut obj = InMemDicomObject::new_empty();
    let mut put =
        |tag: Tag, vr: VR, value: PrimitiveValue| obj.put(DataElement::new(tag, vr, value));
    put(tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE.into());
    if let Some(uid) = sop {
        put(tags::SOP_INSTANCE_UID, VR::UI, uid.into());
    }
    put(tags::PATIENT_NAME, VR::PN, "Test^Patient".into());
    put(tags::PATIENT_ID, VR::LO, "P1".into());
    put(tags::MODALITY, VR::CS, "CT".into());
    put(tags::STUDY_DESCRIPTION, VR::LO, "Generated CT".into());
    if let Some(uid) = study {
        put(tags::STUDY_INSTANCE_UID, VR::UI, uid.into());
    }
    if let Some(uid) = series {
        put(tags::SERIES_INSTANCE_UID, VR::UI, uid.into());
    }
    put(tags::ROWS, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from((pixels / 2).max(1) as u16),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(vec![7u8; pixels]),
    );
    obj
}

pub fn encode(obj: &InMemDicomObject) -> Vec<u8> {
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    bytes
}

/// The C-STORE-RQ command set for a CT instance.
pub fn c_store_rq(message_id: u16, sop_instance: &str) -> Vec<u8> {
    c_store_rq_as(message_id, CT_IMAGE_STORAGE, sop_instance)
}

/// The C-STORE-RQ command set for an instance of `sop_class`.
pub fn c_store_rq_as(message_id: u16, sop_class: &str, sop_instance: &str) -> Vec<u8> {
    let obj = InMemDicomObject::command_from_element_iter([
        DataElement::new(
            tags::AFFECTED_SOP_CLASS_UID,
            VR::UI,
            PrimitiveValue::from(sop_class),
        ),
        DataElement::new(tags::COMMAND_FIELD, VR::US, PrimitiveValue::from(0x0001u16)),
        DataElement::new(tags::MESSAGE_ID, VR::US, PrimitiveValue::from(message_id)),
        DataElement::new(tags::PRIORITY, VR::US, PrimitiveValue::from(0u16)),
        DataElement::new(
            tags::COMMAND_DATA_SET_TYPE,
            VR::US,
            PrimitiveValue::from(0u16),
        ),
        DataElement::new(
            tags::AFFECTED_SOP_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(sop_instance),
        ),
    ]);
    let mut bytes = Vec::new();
    obj.write_dataset_with_ts(&mut bytes, &IMPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    bytes
}

pub fn pdv(context: u8, command: bool, last: bool, data: &[u8]) -> PDataValue {
    PDataValue {
        presentation_context_id: context,
        value_type: if command {
            PDataValueType::Command
        } else {
            PDataValueType::Data
        },
        is_last: last,
        data: data.to_vec(),
    }
}

/// Sends one C-STORE (command in one PDV, data in `chunk`-sized PDVs) and
/// returns the response's (MessageIDBeingRespondedTo, Status).
pub fn c_store(
    assoc: &mut ClientAssociation<std::net::TcpStream>,
    message_id: u16,
    sop_instance: &str,
    data: &[u8],
    chunk: usize,
) -> (u16, u16) {
    c_store_as(
        assoc,
        message_id,
        CT_IMAGE_STORAGE,
        sop_instance,
        data,
        chunk,
    )
}

/// [`c_store`] of an instance of `sop_class`.
pub fn c_store_as(
    assoc: &mut ClientAssociation<std::net::TcpStream>,
    message_id: u16,
    sop_class: &str,
    sop_instance: &str,
    data: &[u8],
    chunk: usize,
) -> (u16, u16) {
    let context = assoc.presentation_contexts()[0].id;
    let command = c_store_rq_as(message_id, sop_class, sop_instance);
    assoc
        .send(&Pdu::PData {
            data: vec![pdv(context, true, true, &command)],
        })
        .unwrap();
    let pieces: Vec<&[u8]> = data.chunks(chunk.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        assoc
            .send(&Pdu::PData {
                data: vec![pdv(context, false, i + 1 == pieces.len(), piece)],
            })
            .unwrap();
    }
    response(assoc)
}

/// Reads one response: (MessageIDBeingRespondedTo, Status).
pub fn response(assoc: &mut ClientAssociation<std::net::TcpStream>) -> (u16, u16) {
    match assoc.receive().unwrap() {
        Pdu::PData { data } => {
            let obj = InMemDicomObject::read_dataset_with_ts(
                &data[0].data[..],
                &IMPLICIT_VR_LITTLE_ENDIAN.erased(),
            )
            .unwrap();
            let field = |tag| obj.element(tag).unwrap().to_int::<u16>().unwrap();
            (
                field(tags::MESSAGE_ID_BEING_RESPONDED_TO),
                field(tags::STATUS),
            )
        }
        other => panic!("expected a response, got {other:?}"),
    }
}
