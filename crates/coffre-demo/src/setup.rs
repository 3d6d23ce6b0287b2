//! Setting the lab up: PKI, chips (emulated), provisioning, broker.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use coffre_broker::{BrokerSetup, LogFollower, Mosquitto, Role};
use coffre_driver::Atecc;
use coffre_emu::board::Board;
use coffre_emu::clock::Timing;
use coffre_emu::presets::Preset;
use coffre_pki::{InitOptions, IssueOptions, Pki};
use coffre_provision::{provision, AssumeYes, Mode, Options};

use crate::{setup, Result};

/// Where to build the lab.
#[derive(Debug, Clone)]
pub struct LabOptions {
    /// Working directory (PKI, chip images, broker files).
    pub dir: PathBuf,
}

/// The lab: a PKI, emulated chips, a running broker.
pub struct Lab {
    /// Working directory.
    pub dir: PathBuf,
    /// The PKI.
    pub pki_dir: PathBuf,
    /// CA certificate PEM.
    pub ca_pem: Vec<u8>,
    /// The running broker.
    pub broker: Mosquitto,
    /// Its address.
    pub broker_addr: SocketAddr,
    /// Its log, followed as it grows (across restarts).
    pub log: LogFollower,
    /// The broker's listener for factory identities (Trust&GO chains).
    pub factory_addr: SocketAddr,
    /// The factory chip's identity: its certificate's CN.
    pub factory_id: String,
}

/// Publisher in lab mode (key in slot 8).
pub const LAB_ID: &str = "m5go-lab";
/// Publisher in offload mode (slot 0 signs).
pub const OFFLOAD_ID: &str = "m5go";
/// Subscriber (offload mode).
pub const SUB_ID: &str = "m5stack";
/// A device whose certificate expired.
pub const EXPIRED_ID: &str = "m5go-expired";
/// A device whose certificate was revoked.
pub const REVOKED_ID: &str = "m5go-revoked";
/// A device certified by another CA.
pub const FOREIGN_ID: &str = "m5go-foreign";
/// A subscriber that is revoked while connected (live revocation).
pub const LIVE_ID: &str = "m5stack-live";
/// The chip that uses the identity it shipped with (no provisioning step).
pub const FACTORY_CHIP: &str = "trustngo";

fn free_port() -> Result<SocketAddr> {
    coffre_fs::free_loopback_addr().map_err(setup("finding a free port"))
}

impl Lab {
    /// The image of chip `name`.
    pub fn chip(&self, name: &str) -> PathBuf {
        chip_path(&self.dir, name)
    }

    /// The certificate of device `id` (`foreign` for the foreign CA's).
    pub fn cert(&self, id: &str) -> PathBuf {
        if id == FOREIGN_ID {
            self.dir
                .join("foreign-pki/devices")
                .join(format!("{id}.crt.pem"))
        } else {
            self.pki_dir.join("devices").join(format!("{id}.crt.pem"))
        }
    }

    /// Build everything under `opts.dir` and start the broker.
    pub fn setup(opts: &LabOptions, progress: &mut dyn FnMut(&str)) -> Result<Lab> {
        let dir = &opts.dir;
        std::fs::create_dir_all(dir.join("chips")).map_err(setup("creating the work directory"))?;
        let pki_dir = dir.join("pki");
        progress("PKI: CA, broker certificate, CRL");
        let force = InitOptions {
            force: true,
            ..InitOptions::default()
        };
        let mut pki = Pki::init(&pki_dir, &force).map_err(setup("PKI"))?;
        let mut foreign = Pki::init(
            dir.join("foreign-pki"),
            &InitOptions {
                ca_name: "Some other CA".into(),
                force: true,
                ..InitOptions::default()
            },
        )
        .map_err(setup("foreign PKI"))?;

        progress(
            "chips: publisher (lab), publisher (offload), subscriber, wrong chips, blank chip, a subscriber to revoke live",
        );
        for (name, preset) in [
            (LAB_ID, Preset::Tngtls),
            (OFFLOAD_ID, Preset::Tngtls),
            (SUB_ID, Preset::Tngtls),
            ("wrong-lab", Preset::Tngtls),
            ("wrong", Preset::Tngtls),
            ("revoked", Preset::Tngtls),
            (LIVE_ID, Preset::Tngtls),
            ("blank", Preset::Blank),
            (FACTORY_CHIP, Preset::Tngtls),
        ] {
            coffre_emu::image::create(&chip_path(dir, name), &preset.build(), true)
                .map_err(setup("chip image"))?;
        }

        progress("provisioning: m5go-lab (lab: key off-chip into slot 8), m5go and m5stack (offload: keys born in the chips)");
        let mut lab = Options::new(LAB_ID, Mode::Lab);
        lab.lock_slot8 = Some(false);
        prov(dir, LAB_ID, &mut pki, &lab)?;
        prov(
            dir,
            OFFLOAD_ID,
            &mut pki,
            &Options::new(OFFLOAD_ID, Mode::Offload),
        )?;
        prov(dir, SUB_ID, &mut pki, &Options::new(SUB_ID, Mode::Offload))?;
        prov(
            dir,
            LIVE_ID,
            &mut pki,
            &Options::new(LIVE_ID, Mode::Offload),
        )?;
        prov(
            dir,
            "revoked",
            &mut pki,
            &Options::new(REVOKED_ID, Mode::Offload),
        )?;
        pki.revoke(REVOKED_ID).map_err(setup("revoking"))?;

        // The wrong chips: another off-chip key in slot 8; another factory
        // key in slot 0. Neither has a certificate of its own.
        {
            let (der, _) = coffre_pki::lab::generate_lab_key();
            let blob = coffre_pki::lab::encode_slot8(&der).map_err(setup("wrong lab key"))?;
            let (_b, mut chip) = open(&chip_path(dir, "wrong-lab"))?;
            chip.write_slot(8, &blob[..])
                .map_err(setup("writing the wrong chip's slot 8"))?;
        }
        let wrong_pk = {
            let (_b, mut chip) = open(&chip_path(dir, "wrong"))?;
            let xy = chip
                .genkey_public(0)
                .map_err(setup("reading the wrong chip's key"))?;
            coffre_pki::util::public_key_from_xy(&xy).map_err(setup("wrong chip key"))?
        };
        // Expired and foreign certificates for the wrong chip's own key, so
        // only the certificate is at fault.
        let past = IssueOptions {
            not_before: Some(time::OffsetDateTime::now_utc() - time::Duration::days(400)),
            not_after: Some(time::OffsetDateTime::now_utc() - time::Duration::days(35)),
            ..IssueOptions::default()
        };
        pki.issue_device(EXPIRED_ID, &wrong_pk, &past)
            .map_err(setup("expired certificate"))?;
        foreign
            .issue_device(FOREIGN_ID, &wrong_pk, &IssueOptions::default())
            .map_err(setup("foreign certificate"))?;

        // The factory chip is registered as a manifest import would do it:
        // its identity is read (the CN of the certificate it carries), not
        // given; nothing is written to it.
        let factory_id = {
            let (_b, mut chip) = open(&chip_path(dir, FACTORY_CHIP))?;
            let chain = coffre_provision::factory::read_chain(&mut chip)
                .map_err(setup("reading the factory chip's certificates"))?;
            let v = coffre_pki::factory::verify_chain(
                &chain.device,
                &chain.signer,
                coffre_emu::factory::root_cert_der(),
                &chain.slot0_public_key,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(setup("checking the factory chip's chain"))?;
            v.device_cn
        };

        progress("broker: mosquitto with mutual TLS, identity usernames, ACL, CRL; a listener for factory identities");
        let mut b = BrokerSetup::new(&pki_dir, dir.join("broker"));
        b.listen = free_port()?;
        let factory_addr = free_port()?;
        b.factory = Some(coffre_broker::FactoryListener {
            listen: factory_addr,
            root_pem: coffre_pki::util::to_pem("CERTIFICATE", coffre_emu::factory::root_cert_der()),
        });
        b.acl
            .allow(&factory_id, Role::Publisher)
            .map_err(setup("ACL"))?;
        for id in [LAB_ID, OFFLOAD_ID, EXPIRED_ID, REVOKED_ID, FOREIGN_ID] {
            b.acl.allow(id, Role::Publisher).map_err(setup("ACL"))?;
        }
        for id in [SUB_ID, LIVE_ID] {
            b.acl.allow(id, Role::Subscriber).map_err(setup("ACL"))?;
        }
        let broker = Mosquitto::start(&b).map_err(setup("starting mosquitto"))?;
        let log = LogFollower::follow(broker.log_path());
        let ca_pem = std::fs::read(pki_dir.join("ca.crt.pem")).map_err(setup("reading the CA"))?;
        Ok(Lab {
            dir: dir.clone(),
            pki_dir,
            ca_pem,
            broker_addr: b.listen,
            broker,
            log,
            factory_addr,
            factory_id,
        })
    }
}

fn chip_path(dir: &Path, name: &str) -> PathBuf {
    dir.join("chips").join(format!("{name}.img"))
}

/// The driver on an emulated chip.
pub type Chip = Atecc<coffre_emu::EmuBus, coffre_emu::clock::EmuDelay>;

/// Open a chip image on a board of its own.
pub fn open(image: &Path) -> Result<(Board, Chip)> {
    let board = Board::open(image, Timing::Instant).map_err(setup("opening a chip image"))?;
    let addr = board.with_chip(|c| coffre_emu::device::Device::address(c));
    let chip = Atecc::new(board.bus.clone(), board.delay(), addr);
    Ok((board, chip))
}

fn prov(dir: &Path, chip: &str, pki: &mut Pki, opts: &Options) -> Result<()> {
    let (_b, mut c) = open(&chip_path(dir, chip))?;
    provision(&mut c, pki, opts, &mut AssumeYes::default())
        .map(|_| ())
        .map_err(setup("provisioning"))
}
