"""What a run is turned into for people (host side): evidence folders, documents, pictures, views, narration."""
