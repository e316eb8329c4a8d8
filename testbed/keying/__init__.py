"""Who installs a virtual link's SAs besides the testbed's manual keys: an
IKEv2 daemon (strongSwan's charon) per VN node, negotiating one IKE_SA and
one transport-mode CHILD_SA per virtual link."""
