"""`make rehearse`: the parent instance's first boot under real systemd, with stand-ins for EC2 and Nitro."""
